import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { ChunkRef, PartRecord, UploadRecord } from '../../src/core/types.js';
import type { MetadataStore } from '../../src/meta/store.js';
import type { FreshStore } from './meta.js';
import { byteOrder, chunkRef, FUTURE, objectDraft } from './meta-fixtures.js';

/** The multipart upload part of the MetadataStore contract (see meta.ts). */
export function uploadsContract(t: Test, fresh: FreshStore): void {
  let clock = 1_000;
  const upload = (key: string, fields: Partial<UploadRecord> = {}): UploadRecord => {
    clock++;
    return {
      id: clock.toString(16).padStart(12, '0') + randomBytes(12).toString('hex'),
      bucket: 'photos',
      key,
      initiated: clock,
      touchedAt: clock,
      ...fields,
    };
  };
  const part = (uploadId: string, partNumber: number, chunks: ChunkRef[] = [chunkRef(), chunkRef()]): PartRecord => ({
    uploadId,
    partNumber,
    size: chunks.reduce((sum, c) => sum + c.size, 0),
    etag: randomBytes(16).toString('hex'),
    chunkSize: 1 << 20,
    chunks,
    uploadedAt: Date.now(),
  });
  const queuedIds = async (store: MetadataStore) =>
    (await store.peekGarbage!(undefined, 1000)).map((g) => g.chunk.id).sort();
  const ids = (chunks: ChunkRef[]) => chunks.map((c) => c.id).sort();

  t.test('uploads: create, get, count; a missing bucket or a taken id is refused', async (t) => {
    const store = await fresh(t);
    const a = upload('a.bin', { contentType: 'text/plain', xattrs: { 'user.x': 'eA==' } });
    await store.createUpload(a);
    t.strictSame(await store.getUpload(a.id), a);
    t.equal(await store.getUpload('0'.repeat(36)), undefined);
    await t.rejects(store.createUpload(a), { code: 'EXISTS' });
    await t.rejects(store.createUpload(upload('x', { bucket: 'nope' })), { code: 'NOT_FOUND' });
    t.equal(await store.uploadCount(), 1);
    await t.rejects(store.listUploads('nope'), { code: 'NOT_FOUND' });
  });

  t.test('uploads: listed by key then id, after a resume point, within a prefix, in pages', async (t) => {
    const store = await fresh(t, ['photos', 'docs']);
    const made: UploadRecord[] = [];
    for (const key of ['b', 'a', 'b', 'dir/x', 'a', 'é', 'dir/y']) {
      const u = upload(key);
      made.push(u);
      await store.createUpload(u);
    }
    await store.createUpload(upload('a', { bucket: 'docs' }));
    const order = [...made].sort((x, y) => byteOrder(x.key, y.key) || byteOrder(x.id, y.id));
    t.same(
      (await store.listUploads('photos')).uploads.map((u) => u.id),
      order.map((u) => u.id),
    );
    const first = await store.listUploads('photos', { limit: 3 });
    t.equal(first.truncated, true);
    const last = first.uploads.at(-1)!;
    const rest = await store.listUploads('photos', { after: { key: last.key, id: last.id } });
    t.equal(rest.truncated, false);
    t.same([...first.uploads, ...rest.uploads], order, 'pages join up');
    t.same(
      (await store.listUploads('photos', { after: { key: 'a' } })).uploads.map((u) => u.key),
      ['b', 'b', 'dir/x', 'dir/y', 'é'],
      'after a key alone: none of that key',
    );
    t.same(
      (await store.listUploads('photos', { prefix: 'dir/', limit: 1 })).uploads.map((u) => u.key),
      ['dir/x'],
    );
    t.same(
      (await store.staleUploads(made[2]!.touchedAt, 10)).map((u) => u.id),
      made.slice(0, 2).map((u) => u.id),
      'stale: touched before the time, oldest first',
    );
  });

  t.test('uploads: a part owns its chunks; replacing it queues the old ones and touches the upload', async (t) => {
    const store = await fresh(t);
    const u = upload('k');
    await store.createUpload(u);
    await t.rejects(store.putPart(part('f'.repeat(36), 1)), { code: 'NO_SUCH_UPLOAD' });
    await t.rejects(store.putPart(part(u.id, 0)), { code: 'INVALID' });
    // A chunk queued as garbage (a session ended before the part was recorded) is taken back.
    const queued = chunkRef();
    await store.queueGarbage([{ chunk: queued, queuedAt: 1 }]);
    const first = part(u.id, 2, [queued, chunkRef()]);
    await store.putPart(first);
    t.same(await queuedIds(store), [], 'recording the part took its chunk off the queue');
    t.equal((await store.getUpload(u.id))!.touchedAt, first.uploadedAt);
    // A write hold ends with the record: the session closing queues nothing of the part.
    const session = await store.openSession({ pid: 1, host: 'h', role: 'r', startedAt: 0 }, 60_000);
    const held = [chunkRef(), chunkRef()];
    await store.holdWrites(session, held);
    const second = { ...part(u.id, 2, [first.chunks[1]!, ...held]), uploadedAt: Date.now() + 5 };
    await store.putPart(second);
    const p1 = { ...part(u.id, 1), uploadedAt: 12_345 };
    await store.putPart(p1);
    await store.closeSession(session);
    t.same(await queuedIds(store), [queued.id], 'only the chunk the new part 2 dropped is garbage');
    t.equal((await store.getUpload(u.id))!.touchedAt, 12_345, 'the last part recorded set touchedAt');
    const page = await store.listParts(u.id, { limit: 1 });
    t.equal(page.truncated, true);
    t.same(
      page.parts.map((p) => p.partNumber),
      [1],
    );
    const rest = await store.listParts(u.id, { after: 1 });
    t.strictSame(rest, { parts: [second], truncated: false }, 'parts come back whole, chunks included');
    await t.rejects(store.listParts('f'.repeat(36)), { code: 'NO_SUCH_UPLOAD' });
  });

  t.test('uploads: a part of many chunks (past one transaction on etcd) ends their write holds too', async (t) => {
    const store = await fresh(t);
    const u = upload('big');
    await store.createUpload(u);
    const session = await store.openSession({ pid: 1, host: 'h', role: 'r', startedAt: 0 }, 60_000);
    const chunks = Array.from({ length: 300 }, () => chunkRef(64));
    await store.holdWrites(session, chunks);
    // Something queued makes etcd journal what does not fit, as a busy store would.
    await store.queueGarbage([{ chunk: chunkRef(), queuedAt: 1 }]);
    await store.putPart(part(u.id, 1, chunks));
    await store.closeSession(session);
    t.equal(await store.garbageCount(), 1, 'none of the part is garbage');
    const replaced = part(u.id, 1, [chunkRef()]);
    await store.putPart(replaced);
    t.equal(await store.garbageCount(), 301, 'replaced, all of it is');
    const draft = objectDraft('photos', 'big', { chunks: replaced.chunks });
    await store.completeUpload(u.id, draft, 'any');
    t.equal(await store.garbageCount(), 301);
  });

  t.test('uploads: completion commits the object, queues unlisted parts and removes the upload at once', async (t) => {
    const store = await fresh(t);
    const u = upload('dir/object.bin');
    await store.createUpload(u);
    const one = part(u.id, 1);
    const two = part(u.id, 2);
    const three = part(u.id, 3);
    for (const p of [one, two, three]) await store.putPart(p);
    const old = await store.putObject(objectDraft('photos', 'dir/object.bin'), 'any');

    const foreign = objectDraft('photos', 'dir/object.bin', { chunks: [...one.chunks, chunkRef()] });
    await t.rejects(store.completeUpload(u.id, foreign, 'any'), { code: 'INVALID_PART' });
    const elsewhere = objectDraft('photos', 'other', { chunks: one.chunks });
    await t.rejects(store.completeUpload(u.id, elsewhere, 'any'), { code: 'INVALID' });
    const draft = objectDraft('photos', 'dir/object.bin', {
      chunks: [...one.chunks, ...three.chunks],
      layout: 'extents',
      etag: `${randomBytes(16).toString('hex')}-2`,
    });
    await t.rejects(store.completeUpload(u.id, draft, 'absent'), { code: 'CONFLICT' });
    t.equal((await store.listParts(u.id)).parts.length, 3, 'refused completions change nothing');
    t.same(await queuedIds(store), []);

    const record = await store.completeUpload(u.id, draft, { version: old.version });
    t.strictSame(await store.getObject('photos', 'dir/object.bin'), record, 'the record, ETag included');
    t.equal(record.etag, draft.etag);
    t.equal((await store.list('photos', { prefix: 'dir/' })).objects[0]!.etag, draft.etag, 'listings carry it');
    t.equal(await store.getUpload(u.id), undefined);
    t.equal(await store.uploadCount(), 0);
    t.same(await queuedIds(store), ids([...two.chunks, ...old.chunks]), 'part 2 and the replaced version');
    await t.rejects(store.completeUpload(u.id, draft, 'any'), { code: 'NO_SUCH_UPLOAD' });
    await t.rejects(store.abortUpload(u.id), { code: 'NO_SUCH_UPLOAD' });
    t.same(
      await store.takeGarbage(FUTURE(), 100).then((g) => ids(g.map((e) => e.chunk))),
      ids([...two.chunks, ...old.chunks]),
      "nothing of the object's chunks is handed out",
    );
  });

  t.test('uploads: abort queues every part chunk', async (t) => {
    const store = await fresh(t);
    const u = upload('k');
    const other = upload('k');
    await store.createUpload(u);
    await store.createUpload(other);
    const parts = [part(u.id, 1), part(u.id, 7, [])];
    for (const p of parts) await store.putPart(p);
    const kept = part(other.id, 1);
    await store.putPart(kept);
    await store.abortUpload(u.id);
    t.same(await queuedIds(store), ids(parts.flatMap((p) => p.chunks)));
    t.equal(await store.getUpload(u.id), undefined);
    await t.rejects(store.listParts(u.id), { code: 'NO_SUCH_UPLOAD' });
    t.strictSame((await store.listParts(other.id)).parts, [kept], 'another upload of the key is untouched');
  });
}
