import type { Test } from 'tap';
import type { GarbageEntry, ObjectDraft, ObjectRecord } from '../../src/core/types.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { bucketRecord, byteOrder, chunkRef, FUTURE, objectDraft } from './meta-fixtures.js';
import { listingContract } from './meta-listing.js';
import { repairContract } from './meta-repairs.js';
import { sessionsContract } from './meta-sessions.js';
import { uploadsContract } from './meta-uploads.js';

/**
 * The contract every MetadataStore must pass (memory, local SQLite, etcd),
 * written once against the interface only. Each subtest gets a fresh store
 * from the factory; the suite closes it and then calls cleanup. Listing and
 * renames live in meta-listing.ts; this file runs both.
 */

export interface MetaFixture {
  store: MetadataStore;
  /** Called after the suite has closed the store: remove files, stop servers. */
  cleanup(): Promise<void>;
}

export type MetaFactory = () => Promise<MetaFixture>;

/** A fresh store holding the given buckets, closed and cleaned up when the subtest ends. */
export type FreshStore = (t: Test, buckets?: string[]) => Promise<MetadataStore>;

export function metaContract(t: Test, factory: MetaFactory): void {
  const fresh: FreshStore = async (t, buckets = ['photos']) => {
    const { store, cleanup } = await factory();
    t.teardown(async () => {
      await store.close();
      await cleanup();
    });
    for (const name of buckets) await store.createBucket(bucketRecord(name));
    return store;
  };
  const put = (store: MetadataStore, key: string, fields: Partial<ObjectDraft> = {}) =>
    store.putObject(objectDraft('photos', key, fields), 'any');

  t.test('buckets: create, get, list, update, delete', async (t) => {
    const store = await fresh(t, []);
    t.same(await store.listBuckets(), []);
    t.equal(await store.getBucket('photos'), undefined);
    const photos = bucketRecord('photos');
    const { wrappedKey: _none, ...plain } = { ...bucketRecord('docs'), encrypted: false };
    await store.createBucket(photos);
    await store.createBucket(plain);
    await store.createBucket(bucketRecord('archive.2024'));
    t.strictSame(await store.getBucket('photos'), photos);
    t.strictSame(await store.getBucket('docs'), plain);
    t.same(
      (await store.listBuckets()).map((b) => b.name),
      ['archive.2024', 'docs', 'photos'],
    );
    await t.rejects(store.createBucket(bucketRecord('photos')), { code: 'EXISTS' });
    t.strictSame(await store.getBucket('photos'), photos, 'a failed create leaves the bucket alone');

    const attrs = { ...photos.attrs, mode: 0o700 };
    const updated = await store.updateBucket(photos, attrs);
    t.strictSame(updated, { ...photos, attrs, version: 1 });
    t.strictSame(await store.getBucket('photos'), updated);
    const missing = bucketRecord('missing');
    await t.rejects(store.updateBucket(missing, missing.attrs), { code: 'NOT_FOUND' });
    t.equal(await store.getBucket('missing'), undefined, 'update does not create');

    await store.deleteBucket('docs');
    t.equal(await store.getBucket('docs'), undefined);
    await t.rejects(store.deleteBucket('docs'), { code: 'NOT_FOUND' });
    t.same(
      (await store.listBuckets()).map((b) => b.name),
      ['archive.2024', 'photos'],
    );
  });

  t.test('buckets: an update is a compare-and-set that only ever changes attrs', async (t) => {
    const store = await fresh(t, []);
    const original = { ...bucketRecord('photos'), id: 'a'.repeat(32) };
    await store.createBucket(original);
    const read = (await store.getBucket('photos'))!;
    // Whatever else the caller's record says, only the attributes are taken from the update.
    const forged = { ...read, wrappedKey: 'forged', encrypted: false, chunkSize: 64 << 10 };
    await t.rejects(store.updateBucket(forged, { ...read.attrs, mode: 0o700 }), { code: 'CONFLICT' });
    const sneaky = { ...read, encrypted: false, chunkSize: 64 << 10 };
    const first = await store.updateBucket(sneaky, { ...read.attrs, mode: 0o700 });
    t.strictSame(first, { ...original, attrs: { ...original.attrs, mode: 0o700 }, version: 1 }, 'only attrs changed');
    await t.rejects(
      store.updateBucket(read, { ...read.attrs, mode: 0o750 }),
      { code: 'CONFLICT' },
      'a stale read (version moved) loses',
    );
    t.equal((await store.getBucket('photos'))!.attrs.mode, 0o700, 'the losing update changed nothing');
    const second = await store.updateBucket(first, { ...first.attrs, uid: 7 });
    t.strictSame(second, { ...original, attrs: { ...original.attrs, mode: 0o700, uid: 7 }, version: 2 });

    // Deleted and re-created (new data key) between read and update: the stale update must not land.
    await store.deleteBucket('photos');
    const recreated = { ...bucketRecord('photos'), createdAt: original.createdAt, id: 'b'.repeat(32) };
    await store.createBucket(recreated);
    await t.rejects(store.updateBucket(second, { ...second.attrs, mode: 0o777 }), { code: 'CONFLICT' });
    t.strictSame(await store.getBucket('photos'), recreated, 'the new bucket and its key are untouched');
    // Buckets without ids (older records) are still told apart by their wrapped key.
    const { id: _a, ...legacyOld } = recreated;
    await store.deleteBucket('photos');
    const { id: _b, ...legacyNew } = { ...bucketRecord('photos'), createdAt: original.createdAt };
    await store.createBucket(legacyNew);
    await t.rejects(store.updateBucket(legacyOld, legacyOld.attrs), { code: 'CONFLICT' });
    const legacyUpdated = await store.updateBucket(legacyNew, { ...legacyNew.attrs, gid: 5 });
    t.strictSame(await store.getBucket('photos'), legacyUpdated);
    t.equal(legacyUpdated.version, 1);
  });

  t.test('buckets: delete refuses while any object exists, markers included', async (t) => {
    const store = await fresh(t, ['photos', 'docs']);
    await put(store, 'deep/down/file');
    await store.putObject(objectDraft('docs', 'empty/'), 'absent');
    await t.rejects(store.deleteBucket('photos'), { code: 'NOT_EMPTY' });
    await t.rejects(store.deleteBucket('docs'), { code: 'NOT_EMPTY' });
    t.ok(await store.getBucket('photos'));
    await store.deleteObject('photos', 'deep/down/file');
    await store.deleteObject('docs', 'empty/');
    await store.deleteBucket('photos');
    await store.deleteBucket('docs');
    t.same(await store.listBuckets(), []);
  });

  t.test('objects in a missing bucket', async (t) => {
    const store = await fresh(t);
    await t.rejects(store.putObject(objectDraft('missing', 'a'), 'any'), { code: 'NOT_FOUND' });
    await t.rejects(store.list('missing'), { code: 'NOT_FOUND' });
    await t.rejects(store.list('missing', { delimiter: '/' }), { code: 'NOT_FOUND' });
    await t.rejects(store.renameObject('missing', 'a', 'b', { replace: true }), { code: 'NOT_FOUND' });
    await t.rejects(store.renamePrefix('missing', 'a/', 'b/'), { code: 'NOT_FOUND' });
    await t.rejects(
      (async () => {
        for await (const _ of store.iterateObjects('missing')) {
          /* drain */
        }
      })(),
      { code: 'NOT_FOUND' },
    );
    t.equal(await store.getObject('missing', 'a'), undefined);
    t.equal(await store.deleteObject('missing', 'a'), undefined);
  });

  t.test('getObject returns exactly what was committed', async (t) => {
    const store = await fresh(t);
    const drafts = [
      objectDraft('photos', 'big.iso', { chunks: [chunkRef(1 << 20), chunkRef(1 << 20), chunkRef(17)] }),
      objectDraft('photos', 'small.txt', {
        chunks: [],
        size: 5,
        inline: Buffer.from('hello').toString('base64'),
        contentType: 'text/plain',
        etag: '5d41402abc4b2a76b9719d911017c592',
        xattrs: { 'user.origin': Buffer.from('camera').toString('base64'), 'user.empty': '' },
      }),
      objectDraft('photos', 'empty', { chunks: [], size: 0, inline: '' }),
      objectDraft('photos', 'link', { kind: 'symlink', chunks: [], inline: Buffer.from('big.iso').toString('base64') }),
      objectDraft('photos', 'dir/'),
      objectDraft('photos', 'fifo', { kind: 'fifo', chunks: [], size: 0 }),
      objectDraft('photos', 'null', {
        kind: 'chardev',
        chunks: [],
        size: 0,
        attrs: { mode: 0o666, uid: 0, gid: 0, mtimeMs: 1, atimeMs: 2, ctimeMs: 3, rdev: 0x103 },
      }),
      objectDraft('photos', 'ünï/cödé/😀 file', {
        attrs: { mode: 0o600, uid: 0, gid: 0, mtimeMs: 1, atimeMs: 2, ctimeMs: 3 },
      }),
    ];
    for (const draft of drafts) {
      const stored = await store.putObject(draft, 'absent');
      t.ok(Number.isSafeInteger(stored.version) && stored.version > 0, `${draft.key}: a version is assigned`);
      t.strictSame(stored, { ...draft, version: stored.version }, `${draft.key}: returned as committed`);
      t.strictSame(await store.getObject('photos', draft.key), stored, `${draft.key}: read back as committed`);
    }
    t.equal(await store.getObject('photos', 'nothing'), undefined);
    t.equal(await store.getObject('photos', 'dir'), undefined, 'a marker is its own key');
    const listed = await store.list('photos', { prefix: 'small' });
    t.equal(listed.objects[0]?.etag, '5d41402abc4b2a76b9719d911017c592', 'a listing carries the S3 ETag');

    const held = (await store.getObject('photos', 'big.iso'))!;
    held.chunks.pop();
    held.attrs.mode = 0;
    drafts[0]!.chunks.pop();
    t.equal((await store.getObject('photos', 'big.iso'))!.chunks.length, 3, 'callers cannot mutate stored records');
  });

  t.test('exchangeObjects swaps two records in one step, where a store offers it', async (t) => {
    const store = await fresh(t);
    if (!store.exchangeObjects) {
      t.pass(`${store.type}: no exchange (the mount answers EINVAL)`);
      return;
    }
    const a = await store.putObject(objectDraft('photos', 'dir/a', { contentType: 'text/a' }), 'absent');
    const b = await store.putObject(objectDraft('photos', 'b', { kind: 'fifo', chunks: [], size: 0 }), 'absent');
    const generation = store.generation();
    const [atA, atB] = await store.exchangeObjects('photos', 'dir/a', 'b');
    t.strictSame({ ...atA, version: 0 }, { ...b, key: 'dir/a', version: 0 }, 'dir/a holds what b held');
    t.strictSame({ ...atB, version: 0 }, { ...a, key: 'b', version: 0 }, 'b holds what dir/a held');
    t.ok(atA.version > Math.max(a.version, b.version) && atB.version > Math.max(a.version, b.version), 'new versions');
    t.strictSame(await store.getObject('photos', 'dir/a'), atA, 'read back');
    t.strictSame(await store.getObject('photos', 'b'), atB, 'read back');
    t.not(store.generation(), generation, 'a commit');
    const listed = await store.list('photos', { delimiter: '/' });
    t.same(
      listed.objects.map((o) => [o.key, o.kind]),
      [['b', 'file']],
      'listing shows the swapped kinds',
    );
    t.same(listed.prefixes, ['dir/']);
    await t.rejects(store.exchangeObjects('photos', 'b', 'missing'), { code: 'NOT_FOUND' });
    await t.rejects(store.exchangeObjects('photos', 'b', 'b'), { code: 'INVALID' });
    t.strictSame(await store.getObject('photos', 'b'), atB, 'a refused exchange changes nothing');

    // A long chunk list (kept apart from the entry by some stores) and a short one trade places;
    // nothing is garbage until a name goes, and then exactly what that name held.
    const long = Array.from({ length: 3000 }, () => chunkRef(1024));
    const short = [chunkRef(), chunkRef()];
    await store.putObject(objectDraft('photos', 'long', { chunks: long }), 'absent');
    await store.putObject(objectDraft('photos', 'short', { chunks: short }), 'absent');
    await store.exchangeObjects('photos', 'long', 'short');
    t.equal(await store.garbageCount(), 0, 'an exchange queues nothing');
    t.same((await store.getObject('photos', 'short'))!.chunks, long, 'the long list moved whole');
    t.same((await store.getObject('photos', 'long'))!.chunks, short, 'the short one too');
    await store.deleteObject('photos', 'long');
    t.same(
      (await store.takeGarbage(FUTURE(), 10)).map((g) => g.chunk.id).sort(),
      short.map((c) => c.id).sort(),
      'deleting a name queues what it holds after the exchange',
    );
    await store.deleteObject('photos', 'short');
    for (let i = 0; i < 50 && (await store.garbageCount()) < long.length; i++)
      await new Promise((r) => setTimeout(r, 100));
    const queued = await store.takeGarbage(FUTURE(), long.length + 10);
    t.equal(queued.length, long.length, 'and the other name what it holds');
  });

  t.test('compare-and-set', async (t) => {
    const store = await fresh(t);
    const v1 = await store.putObject(objectDraft('photos', 'k'), 'absent');
    await t.rejects(store.putObject(objectDraft('photos', 'k'), 'absent'), { code: 'CONFLICT' });
    t.strictSame(await store.getObject('photos', 'k'), v1, "a failed 'absent' changes nothing");

    const v2 = await store.putObject(objectDraft('photos', 'k'), { version: v1.version });
    t.ok(v2.version > v1.version, 'a commit raises the version');
    await t.rejects(store.putObject(objectDraft('photos', 'k'), { version: v1.version }), { code: 'CONFLICT' });
    t.strictSame(await store.getObject('photos', 'k'), v2, 'a stale version changes nothing');
    await t.rejects(store.putObject(objectDraft('photos', 'nope'), { version: v2.version }), { code: 'CONFLICT' });
    t.equal(await store.getObject('photos', 'nope'), undefined, 'a version expectation does not create');

    const v3 = await store.putObject(objectDraft('photos', 'k'), 'any');
    t.ok(v3.version > v2.version);
    const fresh1 = await store.putObject(objectDraft('photos', 'fresh'), 'any');
    t.ok(fresh1.version > 0, "'any' creates");

    await t.rejects(store.deleteObject('photos', 'k', { version: v2.version }), { code: 'CONFLICT' });
    await t.rejects(store.deleteObject('photos', 'k', 'absent'), { code: 'CONFLICT' });
    t.strictSame(await store.getObject('photos', 'k'), v3, 'failed deletes change nothing');
    await t.rejects(store.deleteObject('photos', 'none', { version: 1 }), { code: 'CONFLICT' });
    t.equal(await store.deleteObject('photos', 'none'), undefined);
    t.equal(await store.deleteObject('photos', 'none', 'absent'), undefined);
    t.strictSame(
      await store.deleteObject('photos', 'k', { version: v3.version }),
      v3,
      'delete returns the removed record',
    );
    t.equal(await store.getObject('photos', 'k'), undefined);

    const again = await store.putObject(objectDraft('photos', 'k'), 'absent');
    t.ok(again.version > v3.version, 'a re-created key never reuses a version');
    await t.rejects(store.putObject(objectDraft('photos', 'k'), { version: v3.version }), { code: 'CONFLICT' });
    await t.rejects(store.putObject(objectDraft('photos', 'k'), { version: v1.version }), { code: 'CONFLICT' });
  });

  t.test('concurrent compare-and-set increments lose nothing', async (t) => {
    const store = await fresh(t);
    await store.putObject(objectDraft('photos', 'counter', { chunks: [], size: 0 }), 'absent');
    let conflicts = 0;
    const increment = async () => {
      for (;;) {
        const current = (await store.getObject('photos', 'counter'))!;
        try {
          const next = objectDraft('photos', 'counter', { chunks: [], size: current.size + 1 });
          return await store.putObject(next, { version: current.version });
        } catch (err) {
          if ((err as { code?: string }).code !== 'CONFLICT') throw err;
          conflicts++;
        }
      }
    };
    const results = await Promise.all(Array.from({ length: 25 }, increment));
    t.equal((await store.getObject('photos', 'counter'))!.size, 25);
    t.equal(new Set(results.map((r) => r.version)).size, 25, 'every successful commit has its own version');
    t.comment(`${conflicts} conflicts retried`);
  });

  t.test('garbage: replaced and deleted chunks are queued in the commit, shared ones are not', async (t) => {
    const store = await fresh(t);
    const [a, b, c, d] = [chunkRef(), chunkRef(), chunkRef(), chunkRef()];
    const t0 = Date.now();
    const v1 = await put(store, 'file', { chunks: [a!, b!] });
    await put(store, 'file', { chunks: [b!, c!] });
    t.equal(await store.garbageCount(), 1);
    const [entry] = await store.takeGarbage(FUTURE(), 10);
    t.strictSame(entry?.chunk, a, 'only the chunk the new version dropped');
    t.ok(entry!.queuedAt >= t0 && entry!.queuedAt <= Date.now(), 'queued at commit time');
    t.equal(await store.garbageCount(), 0, 'takeGarbage removes what it returns');

    await t.rejects(store.putObject(objectDraft('photos', 'file', { chunks: [d!] }), { version: v1.version }), {
      code: 'CONFLICT',
    });
    t.equal(await store.garbageCount(), 0, 'a failed commit queues nothing');
    await put(store, 'fresh', { chunks: [d!] });
    t.equal(await store.garbageCount(), 0, 'creating queues nothing');

    await store.deleteObject('photos', 'file');
    t.same(
      (await store.takeGarbage(FUTURE(), 10)).map((g) => g.chunk.id).sort(),
      [b!.id, c!.id].sort(),
      'delete queues every chunk',
    );
    await put(store, 'inline', { chunks: [], inline: 'aGk=' });
    await store.deleteObject('photos', 'inline');
    t.equal(await store.garbageCount(), 0, 'inline records leave no garbage');
  });

  t.test('garbage: rescue, queueGarbage, takeGarbage order and limits', async (t) => {
    const store = await fresh(t);
    const [x, y] = [chunkRef(), chunkRef()];
    await store.queueGarbage([
      { chunk: x!, queuedAt: 1000 },
      { chunk: y!, queuedAt: 1000 },
    ]);
    t.equal(await store.garbageCount(), 2);
    await put(store, 'adopts', { chunks: [x!] });
    t.equal(await store.garbageCount(), 1, 'a commit takes back a chunk it references');
    t.same(
      (await store.takeGarbage(FUTURE(), 10)).map((g) => g.chunk.id),
      [y!.id],
    );

    const entries: GarbageEntry[] = [500, 100, 400, 200, 300].map((queuedAt) => ({ chunk: chunkRef(), queuedAt }));
    await store.queueGarbage(entries);
    await store.queueGarbage([entries[0]!]);
    t.equal(await store.garbageCount(), 5, 'queuing a chunk twice keeps one entry');
    t.same(await store.takeGarbage(100, 10), [], 'queuedBefore is exclusive');
    const first = await store.takeGarbage(450, 2);
    t.same(
      first.map((g) => g.queuedAt),
      [100, 200],
      'oldest first, at most limit',
    );
    t.strictSame(first[0]!.chunk, entries[1]!.chunk);
    t.same(
      (await store.takeGarbage(450, 10)).map((g) => g.queuedAt),
      [300, 400],
    );
    t.equal(await store.garbageCount(), 1);
    t.same(
      (await store.takeGarbage(FUTURE(), 10)).map((g) => g.queuedAt),
      [500],
    );
    t.same(await store.takeGarbage(FUTURE(), 10), []);
  });

  t.test('peekGarbage shows the queue without taking it', async (t) => {
    const store = await fresh(t);
    if (!store.peekGarbage) {
      t.pass('optional, and this store has none');
      return;
    }
    const entries = Array.from({ length: 5 }, (_, i) => ({ chunk: chunkRef(), queuedAt: 1000 + i }));
    await store.queueGarbage(entries);
    const sorted = [...entries].sort((a, b) => byteOrder(a.chunk.id, b.chunk.id));
    const first = await store.peekGarbage(undefined, 3);
    t.strictSame(first, sorted.slice(0, 3));
    t.strictSame(await store.peekGarbage(first[2]!.chunk.id, 3), sorted.slice(3));
    t.equal(await store.garbageCount(), 5);
  });

  t.test('lookup, where a store offers it, tells what getObject and list tell', async (t) => {
    const store = await fresh(t);
    if (!store.lookup) {
      t.pass('optional, and this store has none');
      return;
    }
    for (const key of ['file', 'both', 'both/', 'marker/', 'implicit/deep/x', 'marker/inner']) await put(store, key);
    const names = ['file', 'both', 'marker', 'implicit', 'implicit/deep', 'nothing', 'marker/inner', 'none/at/all'];
    for (const key of names) {
      const below = await store.list('photos', { prefix: `${key}/`, limit: 1 });
      const expected = {
        record: await store.getObject('photos', key),
        marker: await store.getObject('photos', `${key}/`),
        dir: below.objects.length > 0,
      };
      const got = await store.lookup('photos', key);
      t.strictSame({ record: got.record, marker: got.marker, dir: got.dir }, expected, key);
    }
    t.same(await store.lookup('missing', 'file'), { dir: false }, 'in a missing bucket: nothing');
  });

  t.test('iterateObjects yields full records in key order', async (t) => {
    const store = await fresh(t, ['photos', 'docs']);
    const expected: ObjectRecord[] = [];
    for (let i = 0; i < 300; i++) {
      const key = `${i % 3 === 0 ? 'dir/' : ''}k${String(i).padStart(3, '0')}${i % 7 === 0 ? 'é' : ''}`;
      const fields: Partial<ObjectDraft> = { chunks: [chunkRef(), chunkRef()] };
      if (i % 5 === 0) fields.inline = 'eA==';
      expected.push(await put(store, key, fields));
    }
    expected.push(await put(store, 'dir/'));
    await store.putObject(objectDraft('docs', 'not-here'), 'any');
    expected.sort((a, b) => byteOrder(a.key, b.key));
    const seen: ObjectRecord[] = [];
    for await (const record of store.iterateObjects('photos')) seen.push(record);
    t.equal(seen.length, expected.length);
    t.same(
      seen.map((r) => r.key),
      expected.map((r) => r.key),
      'key order',
    );
    t.strictSame(seen, expected, 'chunks and all');
    const empty: ObjectRecord[] = [];
    await store.createBucket(bucketRecord('void'));
    for await (const record of store.iterateObjects('void')) empty.push(record);
    t.same(empty, []);
  });

  t.test('generation changes with every commit', async (t) => {
    const store = await fresh(t, []);
    const seen = new Set<number>([store.generation()]);
    const changed = async (what: string, commit: () => Promise<unknown>) => {
      await commit();
      const generation = store.generation();
      t.notOk(seen.has(generation), `${what} changes the generation`);
      seen.add(generation);
    };
    await changed('createBucket', () => store.createBucket(bucketRecord('photos')));
    await changed('updateBucket', async () => {
      const read = (await store.getBucket('photos'))!;
      await store.updateBucket(read, { ...read.attrs, mode: 0o700 });
    });
    await changed('putObject', () => put(store, 'a'));
    await changed('putObject again', () => put(store, 'a'));
    await changed('renameObject', () => store.renameObject('photos', 'a', 'd/b', { replace: false }));
    await changed('renamePrefix', () => store.renamePrefix('photos', 'd/', 'e/'));
    await changed('deleteObject', () => store.deleteObject('photos', 'e/b'));
    await changed('deleteBucket', () => store.deleteBucket('photos'));
  });

  t.test('a closed store refuses work', async (t) => {
    const { store, cleanup } = await factory();
    t.teardown(cleanup);
    await store.createBucket(bucketRecord('photos'));
    await store.close();
    await store.close();
    await t.rejects(store.getObject('photos', 'a'), { code: 'UNAVAILABLE' });
    await t.rejects(store.putObject(objectDraft('photos', 'a'), 'any'), { code: 'UNAVAILABLE' });
  });

  listingContract(t, fresh);
  sessionsContract(t, fresh);
  repairContract(t, fresh);
  uploadsContract(t, fresh);
}
