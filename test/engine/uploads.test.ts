import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { windowLayers } from '../../src/core/extents.js';
import type { Lilio } from '../../src/engine/lilio.js';
import { multipartEtag } from '../../src/engine/upload-completion.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { collect, pattern, pieces, type TestEngine, testEngine } from '../fixtures/engine.js';
import { LosingStore } from '../fixtures/losing-store.js';

const CHUNK = 64 * 1024;
/** Small parts keep the tests fast; one test uses S3's real 5 MiB minimum. */
const MIN_PART = 2 * CHUNK;

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

type StoreKind = 'memory' | 'sqlite';

async function engine(t: Test, kind: StoreKind, overrides: Partial<ConfigInput> = {}): Promise<TestEngine> {
  let meta: MetadataStore;
  if (kind === 'memory') meta = new MemoryMetadataStore();
  else {
    const dir = mkdtempSync(join(tmpdir(), 'lilio-uploads-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    meta = LocalMetadataStore.open({ path: dir });
  }
  const made = await testEngine(
    {
      chunkSize: CHUNK,
      inlineThreshold: 0,
      uploads: { expireAfterSeconds: 3600, minPartSize: MIN_PART },
      ...overrides,
    },
    { meta },
  );
  t.teardown(() => made.lilio.close());
  return made;
}

/** Every chunk id some backend holds. */
async function storedIds(engine: TestEngine): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const store of engine.stores.values()) for await (const id of store.list()) ids.add(id);
  return ids;
}

async function upload(lilio: Lilio, uploadId: string, partNumber: number, data: Buffer) {
  return lilio.uploads.uploadPart(uploadId, partNumber, pieces(data, 10_000));
}

for (const kind of ['memory', 'sqlite'] as const) {
  t.test(`${kind}: three parts read back whole and across part boundaries`, async (t) => {
    const { lilio } = await engine(t, kind);
    await lilio.createBucket('bkt');
    const created = await lilio.uploads.create('bkt', 'big.bin', { contentType: 'application/x-test' });
    const parts = [pattern(3 * CHUNK + 1, 1), pattern(2 * CHUNK + 3, 2), pattern(7, 3)];
    const results = [];
    for (const [i, data] of parts.entries()) results.push(await upload(lilio, created.id, i + 1, data));
    t.same(
      results,
      parts.map((p) => ({ etag: md5(p), size: p.length })),
      'each part answers the MD5 of its bytes',
    );
    const record = await lilio.uploads.complete(
      created.id,
      results.map((r, i) => ({ partNumber: i + 1, etag: `"${r.etag}"` })),
    );
    const whole = Buffer.concat(parts);
    t.equal(record.size, whole.length);
    t.equal(record.layout, 'extents');
    t.equal(record.etag, multipartEtag(parts.map(md5)));
    t.match(record.etag, /^[0-9a-f]{32}-3$/);
    t.equal(record.contentType, 'application/x-test');
    t.same(
      record.partSizes,
      parts.map((p) => p.length),
      'part sizes, for ?partNumber=N',
    );
    for (const [window, layers] of windowLayers(record)) {
      for (const { extent } of layers) {
        t.ok(
          extent[0] >= window * CHUNK && extent[0] + extent[2] <= (window + 1) * CHUNK,
          `extent at ${extent[0]} stays in window ${window}`,
        );
      }
    }
    const head = await lilio.headObject('bkt', 'big.bin');
    t.equal(head.etag, record.etag, 'the ETag is stored with the record');
    t.ok((await collect(lilio.getObject('bkt', 'big.bin'))).equals(whole), 'read back byte for byte');
    const start = parts[0]!.length - 5;
    const end = parts[0]!.length + parts[1]!.length + 4;
    t.ok(
      (await collect(lilio.getObject('bkt', 'big.bin', { start, end }))).equals(whole.subarray(start, end)),
      'a range crossing both part boundaries',
    );
    await t.rejects(lilio.uploads.complete(created.id, [{ partNumber: 1, etag: results[0]!.etag }]), {
      code: 'NO_SUCH_UPLOAD',
    });
    t.equal(await lilio.meta.uploadCount(), 0);
  });

  t.test(`${kind}: an encrypted bucket round trip`, async (t) => {
    const { lilio, stores } = await engine(t, kind);
    await lilio.createBucket('secret', { encrypt: true });
    const { id } = await lilio.uploads.create('secret', 'x', { xattrs: { 'user.color': Buffer.from('blue') } });
    t.match((await lilio.meta.getUpload(id))!.xattrs, { 'user.color': /^aes-gcm:/ }, 'user metadata is sealed');
    const parts = [pattern(2 * CHUNK + 5, 4), pattern(100, 5)];
    const etags = [];
    for (const [i, data] of parts.entries()) etags.push((await upload(lilio, id, i + 1, data)).etag);
    const record = await lilio.uploads.complete(
      id,
      etags.map((etag, i) => ({ partNumber: i + 1, etag })),
    );
    const stored = await stores.get(record.chunks[0]!.replicas[0]!)!.get(record.chunks[0]!.id);
    t.notOk(stored.subarray(0, 64).equals(parts[0]!.subarray(0, 64)), 'chunks are stored encrypted');
    t.ok((await collect(lilio.getObject('secret', 'x'))).equals(Buffer.concat(parts)));
    t.same((await lilio.statObject('secret', 'x')).xattrs, { 'user.color': Buffer.from('blue').toString('base64') });
  });

  t.test(`${kind}: parts out of order, one re-uploaded: the replaced one becomes garbage`, async (t) => {
    const made = await engine(t, kind);
    const { lilio } = made;
    await lilio.createBucket('bkt');
    const { id } = await lilio.uploads.create('bkt', 'k');
    const third = await upload(lilio, id, 3, pattern(10, 3));
    const first = await upload(lilio, id, 1, pattern(MIN_PART, 1));
    await upload(lilio, id, 2, pattern(MIN_PART + 1, 2));
    const oldTwo = (await lilio.meta.listParts(id)).parts.find((p) => p.partNumber === 2)!;
    const second = await upload(lilio, id, 2, pattern(MIN_PART + 2, 22));
    const listing = await lilio.uploads.listParts(id);
    t.same(
      listing.parts.map((p) => [p.partNumber, p.etag]),
      [
        [1, first.etag],
        [2, second.etag],
        [3, third.etag],
      ],
    );
    await lilio.chunks.drain();
    await lilio.collectGarbage({ graceMs: 0 });
    const held = await storedIds(made);
    for (const chunk of oldTwo.chunks) t.notOk(held.has(chunk.id), 'the replaced part 2 is deleted');
    await lilio.uploads.complete(id, [
      { partNumber: 1, etag: first.etag },
      { partNumber: 2, etag: second.etag },
      { partNumber: 3, etag: third.etag },
    ]);
    const expected = Buffer.concat([pattern(MIN_PART, 1), pattern(MIN_PART + 2, 22), pattern(10, 3)]);
    t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(expected), 'the new part 2 is in the object');
  });

  t.test(`${kind}: completion refuses bad part lists and changes nothing`, async (t) => {
    const { lilio } = await engine(t, kind);
    await lilio.createBucket('bkt');
    const { id } = await lilio.uploads.create('bkt', 'k');
    const one = await upload(lilio, id, 1, pattern(MIN_PART, 1));
    const two = await upload(lilio, id, 2, pattern(MIN_PART - 1, 2));
    const three = await upload(lilio, id, 3, pattern(5, 3));
    await t.rejects(
      lilio.uploads.complete(id, [
        { partNumber: 2, etag: two.etag },
        { partNumber: 1, etag: one.etag },
      ]),
      { code: 'INVALID_PART_ORDER' },
    );
    await t.rejects(
      lilio.uploads.complete(id, [
        { partNumber: 1, etag: one.etag },
        { partNumber: 1, etag: one.etag },
      ]),
      { code: 'INVALID_PART_ORDER' },
      'a part listed twice is out of order',
    );
    await t.rejects(
      lilio.uploads.complete(id, [
        { partNumber: 1, etag: one.etag },
        { partNumber: 4, etag: one.etag },
      ]),
      { code: 'INVALID_PART' },
      'a part never uploaded',
    );
    await t.rejects(
      lilio.uploads.complete(id, [
        { partNumber: 1, etag: one.etag },
        { partNumber: 3, etag: two.etag },
      ]),
      { code: 'INVALID_PART' },
      'a wrong ETag',
    );
    await t.rejects(
      lilio.uploads.complete(id, [
        { partNumber: 2, etag: two.etag },
        { partNumber: 3, etag: three.etag },
      ]),
      { code: 'ENTITY_TOO_SMALL' },
      'a part other than the last below the minimum',
    );
    await t.rejects(lilio.uploads.complete(id, []), { code: 'INVALID' });
    await t.rejects(lilio.headObject('bkt', 'k'), { code: 'NOT_FOUND' }, 'no object appeared');
    t.equal((await lilio.uploads.listParts(id)).parts.length, 3, 'the upload is intact');
    await t.rejects(lilio.uploads.complete(id, [{ partNumber: 1, etag: one.etag }], { bucket: 'bkt', key: 'other' }), {
      code: 'NO_SUCH_UPLOAD',
    });
    const record = await lilio.uploads.complete(id, [
      { partNumber: 1, etag: one.etag },
      { partNumber: 3, etag: three.etag },
    ]);
    t.equal(record.size, MIN_PART + 5, 'the small last part is fine');
  });

  t.test(`${kind}: abort, then gc deletes exactly the parts' chunks`, async (t) => {
    const made = await engine(t, kind);
    const { lilio } = made;
    await lilio.createBucket('bkt');
    const kept = await lilio.putObject('bkt', 'kept', pieces(pattern(2 * CHUNK, 9)));
    const { id } = await lilio.uploads.create('bkt', 'k');
    await upload(lilio, id, 1, pattern(2 * CHUNK + 1, 1));
    await upload(lilio, id, 2, pattern(CHUNK, 2));
    const partChunks = (await lilio.meta.listParts(id)).parts.flatMap((p) => p.chunks.map((c) => c.id));
    await lilio.chunks.drain();
    const before = await storedIds(made);
    t.equal(before.size, kept.chunks.length + partChunks.length);
    await lilio.uploads.abort(id);
    await t.rejects(lilio.uploads.abort(id), { code: 'NO_SUCH_UPLOAD' });
    await t.rejects(lilio.uploads.complete(id, [{ partNumber: 1, etag: 'x' }]), { code: 'NO_SUCH_UPLOAD' });
    await t.rejects(upload(lilio, id, 3, pattern(1)), { code: 'NO_SUCH_UPLOAD' });
    const gc = await lilio.collectGarbage({ graceMs: 0 });
    t.equal(gc.deleted, partChunks.length, 'every part chunk, nothing else');
    t.same([...(await storedIds(made))].sort(), kept.chunks.map((c) => c.id).sort());
  });

  t.test(`${kind}: gc and the orphan scan during an upload delete nothing of it`, async (t) => {
    const made = await engine(t, kind);
    const { lilio } = made;
    await lilio.createBucket('bkt');
    const { id } = await lilio.uploads.create('bkt', 'k');
    const one = await upload(lilio, id, 1, pattern(2 * CHUNK, 1));
    // Part 2 is half streamed when gc runs.
    let release!: () => void;
    const paused = new Promise<void>((resolve) => {
      release = resolve;
    });
    let streamed!: () => void;
    const halfway = new Promise<void>((resolve) => {
      streamed = resolve;
    });
    const second = pattern(3 * CHUNK, 2);
    const body = async function* () {
      yield second.subarray(0, 2 * CHUNK + 10);
      streamed();
      await paused;
      yield second.subarray(2 * CHUNK + 10);
    };
    const pending = lilio.uploads.uploadPart(id, 2, body());
    await halfway;
    // Sealed chunks are noted once encoded, and their holds recorded in batches: both done now.
    await lilio.chunks.drain();
    await lilio.session.flush();
    const before = await storedIds(made);
    t.ok(before.size >= 4, `${before.size} chunks stored so far`);
    const gc = await lilio.collectGarbage({ graceMs: 0 });
    const orphans = await collectOrphans(lilio, { graceMs: 0 });
    t.equal(gc.deleted, 0, 'the queue hands out nothing');
    t.equal(orphans.orphans, 0, 'the orphan scan finds no orphan');
    t.same(await storedIds(made), before, 'every chunk is still there');
    release();
    const two = await pending;
    const record = await lilio.uploads.complete(id, [
      { partNumber: 1, etag: one.etag },
      { partNumber: 2, etag: two.etag },
    ]);
    t.equal((await collectOrphans(lilio, { graceMs: 0 })).orphans, 0);
    t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 0);
    t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(Buffer.concat([pattern(2 * CHUNK, 1), second])));
    t.equal(record.chunks.length, (await storedIds(made)).size, 'exactly the object is stored');
  });

  t.test(`${kind}: a part whose stream fails or is refused leaves no part and no chunk`, async (t) => {
    const made = await engine(t, kind);
    const { lilio } = made;
    await lilio.createBucket('bkt');
    const { id } = await lilio.uploads.create('bkt', 'k');
    const failing = async function* () {
      yield pattern(2 * CHUNK + 100, 1);
      throw new Error('client went away');
    };
    await t.rejects(lilio.uploads.uploadPart(id, 1, failing()), { message: 'client went away' });
    await t.rejects(lilio.uploads.uploadPart(id, 1, pieces(pattern(CHUNK + 1, 2)), { expectMd5: md5(pattern(1)) }), {
      code: 'INTEGRITY',
    });
    await t.rejects(
      lilio.uploads.uploadPart(id, 1, pieces(pattern(CHUNK + 1, 2)), {
        verify: ({ size }) => {
          if (size !== CHUNK) throw new Error('Content-Length mismatch');
        },
      }),
      { message: 'Content-Length mismatch' },
    );
    const controller = new AbortController();
    const aborting = async function* () {
      yield pattern(CHUNK + 1, 3);
      controller.abort();
      yield pattern(10, 4);
    };
    await t.rejects(lilio.uploads.uploadPart(id, 1, aborting(), { signal: controller.signal }));
    t.same((await lilio.uploads.listParts(id)).parts, [], 'no part recorded');
    await lilio.chunks.drain();
    await lilio.collectGarbage({ graceMs: 0 });
    t.equal((await storedIds(made)).size, 0, 'no chunk left on any backend');
    await t.rejects(lilio.uploads.uploadPart(id, 0, pieces(pattern(1))), { code: 'INVALID' });
    await t.rejects(lilio.uploads.uploadPart(id, 10_001, pieces(pattern(1))), { code: 'INVALID' });
    await t.rejects(lilio.uploads.uploadPart('../../etc', 1, pieces(pattern(1))), { code: 'NO_SUCH_UPLOAD' });
  });

  t.test(`${kind}: completing without a part collects that part's chunks`, async (t) => {
    const made = await engine(t, kind);
    const { lilio } = made;
    await lilio.createBucket('bkt');
    const { id } = await lilio.uploads.create('bkt', 'k');
    const one = await upload(lilio, id, 1, pattern(MIN_PART, 1));
    const two = await upload(lilio, id, 2, pattern(CHUNK + 1, 2));
    await upload(lilio, id, 3, pattern(CHUNK + 2, 3));
    const record = await lilio.uploads.complete(id, [
      { partNumber: 1, etag: one.etag },
      { partNumber: 2, etag: two.etag },
    ]);
    await lilio.chunks.drain();
    const gc = await lilio.collectGarbage({ graceMs: 0 });
    t.equal(gc.deleted, 2, "part 3's two chunks");
    t.same([...(await storedIds(made))].sort(), record.chunks.map((c) => c.id).sort());
    t.ok(
      (await collect(lilio.getObject('bkt', 'k'))).equals(Buffer.concat([pattern(MIN_PART, 1), pattern(CHUNK + 1, 2)])),
    );
  });

  t.test(`${kind}: an upload untouched past uploads.expireAfterSeconds is aborted by gc`, async (t) => {
    const made = await engine(t, kind, { uploads: { expireAfterSeconds: 1, minPartSize: MIN_PART } });
    const { lilio } = made;
    await lilio.createBucket('bkt');
    const stale = await lilio.uploads.create('bkt', 'old');
    await upload(lilio, stale.id, 1, pattern(CHUNK + 1, 1));
    await lilio.chunks.drain();
    const early = await lilio.collectGarbage({ graceMs: 0 });
    t.equal(early.uploadsExpired, 0, 'not yet');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const fresh = await lilio.uploads.create('bkt', 'new');
    await upload(lilio, fresh.id, 1, pattern(10, 2));
    await lilio.chunks.drain();
    const gc = await lilio.collectGarbage({ graceMs: 0 });
    t.equal(gc.uploadsExpired, 1, 'the stale upload went');
    t.equal(gc.deleted, 2, 'with its chunks');
    await t.rejects(lilio.uploads.listParts(stale.id), { code: 'NO_SUCH_UPLOAD' });
    t.equal((await lilio.uploads.listParts(fresh.id)).parts.length, 1, 'the fresh one stays');
  });

  t.test(`${kind}: deleting a bucket aborts its uploads; one of a re-created bucket is gone`, async (t) => {
    const made = await engine(t, kind);
    const { lilio } = made;
    await lilio.createBucket('bkt', { encrypt: true });
    const first = await lilio.uploads.create('bkt', 'k');
    await upload(lilio, first.id, 1, pattern(CHUNK + 1, 1));
    await lilio.putObject('bkt', 'obj', pieces(pattern(10, 2)));
    await t.rejects(lilio.deleteBucket('bkt'), { code: 'NOT_EMPTY' });
    t.equal(await lilio.meta.uploadCount(), 1, 'a bucket with objects keeps its uploads');
    await lilio.deleteObject('bkt', 'obj');
    await lilio.deleteBucket('bkt');
    t.equal(await lilio.meta.uploadCount(), 0, 'the upload went with the bucket');
    await lilio.chunks.drain();
    await lilio.collectGarbage({ graceMs: 0 });
    t.equal((await storedIds(made)).size, 0, 'its chunks were collected');

    await lilio.createBucket('bkt', { encrypt: true });
    const second = await lilio.uploads.create('bkt', 'k');
    await lilio.deleteBucket('bkt');
    // An upload created while the bucket was being deleted, as a racing client could leave it.
    await lilio.createBucket('bkt', { encrypt: true });
    await lilio.meta.createUpload({ ...second, bucket: 'bkt' });
    await t.rejects(upload(lilio, second.id, 1, pattern(5)), { code: 'NO_SUCH_UPLOAD' });
    await t.rejects(lilio.uploads.complete(second.id, [{ partNumber: 1, etag: md5(pattern(5)) }]), {
      code: 'INVALID_PART',
    });
  });

  t.test(`${kind}: listings page with their markers; part copy reads through the reader`, async (t) => {
    const { lilio } = await engine(t, kind);
    await lilio.createBucket('bkt');
    await lilio.createBucket('other');
    const made = [];
    for (const key of ['b', 'a', 'b', 'c/d', 'a']) made.push(await lilio.uploads.create('bkt', key));
    await lilio.uploads.create('other', 'a');
    const expected = [...made].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.id < y.id ? -1 : 1));
    const seen: string[] = [];
    let marker: { keyMarker?: string; uploadIdMarker?: string } = {};
    for (let page = 0; page < 10; page++) {
      const listing = await lilio.uploads.listUploads('bkt', { ...marker, maxUploads: 2 });
      seen.push(...listing.uploads.map((u) => u.id));
      if (!listing.isTruncated) break;
      marker = { keyMarker: listing.nextKeyMarker!, uploadIdMarker: listing.nextUploadIdMarker! };
    }
    t.same(
      seen,
      expected.map((u) => u.id),
      'every upload once, in key then initiation order',
    );
    t.same(
      (await lilio.uploads.listUploads('bkt', { keyMarker: 'a' })).uploads.map((u) => u.key),
      ['b', 'b', 'c/d'],
      'a key marker alone skips every upload of that key',
    );
    t.same(
      (await lilio.uploads.listUploads('bkt', { prefix: 'c/' })).uploads.map((u) => u.key),
      ['c/d'],
    );

    const source = pattern(3 * CHUNK, 7);
    await lilio.putObject('other', 'src', pieces(source));
    const id = made[0]!.id;
    for (let n = 1; n <= 5; n++) await upload(lilio, id, n, pattern(MIN_PART, n));
    const copied = await lilio.uploads.uploadPartCopy(id, 6, 'other', 'src', { range: { start: 100, end: 2 * CHUNK } });
    t.equal(copied.etag, md5(source.subarray(100, 2 * CHUNK)));
    const first = await lilio.uploads.listParts(id, { maxParts: 4 });
    t.same(
      first.parts.map((p) => p.partNumber),
      [1, 2, 3, 4],
    );
    t.equal(first.isTruncated, true);
    const rest = await lilio.uploads.listParts(id, { partNumberMarker: first.nextPartNumberMarker! });
    t.same(
      rest.parts.map((p) => [p.partNumber, p.size]),
      [
        [5, MIN_PART],
        [6, 2 * CHUNK - 100],
      ],
    );
    t.equal(rest.isTruncated, false);
    const source2 = await lilio.meta.getObject('other', 'src');
    const part6 = (await lilio.meta.listParts(id, { after: 5 })).parts[0]!;
    const shared = part6.chunks.filter((c) => source2!.chunks.some((s) => s.id === c.id));
    t.same(shared, [], 'the copy owns chunks of its own');
  });
}

t.test('a completion or a part whose answer was lost is read back, never undone', async (t) => {
  const meta = new LosingStore();
  const made = await testEngine(
    { chunkSize: CHUNK, inlineThreshold: 0, uploads: { expireAfterSeconds: 3600, minPartSize: MIN_PART } },
    { meta, commitReadBackMs: 1_000 },
  );
  const { lilio } = made;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const { id } = await lilio.uploads.create('bkt', 'k');
  meta.lose = 'after';
  const one = await upload(lilio, id, 1, pattern(MIN_PART, 1));
  t.equal(one.etag, md5(pattern(MIN_PART, 1)), 'a part that landed is a success');
  meta.lose = 'instead';
  await t.rejects(upload(lilio, id, 2, pattern(CHUNK + 1, 2)), { code: 'COMMIT_UNKNOWN' });
  await lilio.chunks.drain();
  t.equal((await storedIds(made)).size, 4, 'the chunks of a part that may still land are kept');
  await meta.landHeld();
  const two = (await lilio.uploads.listParts(id)).parts[1]!;
  t.equal(two.partNumber, 2, 'it landed late');

  const parts = [
    { partNumber: 1, etag: one.etag },
    { partNumber: 2, etag: two.etag },
  ];
  meta.lose = 'instead';
  await t.rejects(lilio.uploads.complete(id, parts), { code: 'COMMIT_UNKNOWN' });
  t.equal((await lilio.uploads.listParts(id)).parts.length, 2, 'not landed: the upload keeps its parts');
  await lilio.collectGarbage({ graceMs: 0 });
  t.equal((await storedIds(made)).size, 4, 'and its chunks');
  await meta.landHeld();
  await t.rejects(lilio.uploads.listParts(id), { code: 'NO_SUCH_UPLOAD' }, 'landed late: the upload is gone');
  t.ok(
    (await collect(lilio.getObject('bkt', 'k'))).equals(Buffer.concat([pattern(MIN_PART, 1), pattern(CHUNK + 1, 2)])),
  );

  const again = await lilio.uploads.create('bkt', 'k2');
  const part = await upload(lilio, again.id, 1, pattern(10, 3));
  meta.lose = 'after';
  const record = await lilio.uploads.complete(again.id, [{ partNumber: 1, etag: part.etag }]);
  t.equal(record.size, 10, 'a completion that landed is a success');
  t.equal(await lilio.meta.getUpload(again.id), undefined);
});

t.test('S3 sizes: parts of 5 MiB + 1, 5 MiB + 3 and 7 bytes under the real 5 MiB minimum', async (t) => {
  const { lilio } = await engine(t, 'memory', { uploads: { expireAfterSeconds: 3600, minPartSize: 5 * 1024 * 1024 } });
  await lilio.createBucket('bkt');
  const { id } = await lilio.uploads.create('bkt', 'big');
  const MiB5 = 5 * 1024 * 1024;
  const parts = [pattern(MiB5 + 1, 1), pattern(MiB5 + 3, 2), pattern(7, 3)];
  const etags = [];
  for (const [i, data] of parts.entries()) etags.push((await upload(lilio, id, i + 1, data)).etag);
  await t.rejects(
    lilio.uploads.complete(id, [
      { partNumber: 3, etag: etags[2]! },
      { partNumber: 2, etag: etags[1]! },
    ]),
    { code: 'INVALID_PART_ORDER' },
  );
  const record = await lilio.uploads.complete(
    id,
    etags.map((etag, i) => ({ partNumber: i + 1, etag })),
  );
  const whole = Buffer.concat(parts);
  t.ok((await collect(lilio.getObject('bkt', 'big'))).equals(whole));
  const start = MiB5 - 1000;
  const end = 2 * MiB5 + 6;
  t.ok((await collect(lilio.getObject('bkt', 'big', { start, end }))).equals(whole.subarray(start, end)));
  t.equal(record.etag, multipartEtag(parts.map(md5)));
});
