import t, { type Test } from 'tap';
import type { MemoryBackend } from '../../src/backends/memory.js';
import { CommitUnknownError } from '../../src/core/errors.js';
import type { ChunkRef, ObjectDraft } from '../../src/core/types.js';
import { isDraft } from '../../src/engine/commit-outcome.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';
import { LosingStore } from '../fixtures/losing-store.js';

// The resolution of a commit whose answer was lost (src/engine/commit-outcome.ts), against a
// memory store that loses answers on demand: a landed commit is a success, one that did not land
// is reported and its chunks queued as garbage (never deleted at once), and one that cannot be
// read back leaves everything as it is.

const CHUNK = 64 * 1024;

async function engine(t: Test, commitReadBackMs = 5_000) {
  const meta = new LosingStore();
  const made = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 }, { meta, commitReadBackMs });
  t.teardown(() => made.lilio.close());
  await made.lilio.createBucket('bkt');
  return { ...made, meta };
}

/** Replicas of the chunk that its backends hold. */
async function held(stores: Map<string, MemoryBackend>, chunk: ChunkRef): Promise<number> {
  let n = 0;
  for (const name of chunk.replicas) if ((await stores.get(name)!.stat(chunk.id)) !== undefined) n++;
  return n;
}

async function queued(meta: LosingStore): Promise<Map<string, number>> {
  return new Map((await meta.peekGarbage(undefined, 1000)).map((e) => [e.chunk.id, e.queuedAt]));
}

t.test('a put whose answer was lost but which landed is a success', async (t) => {
  const { lilio, meta, stores } = await engine(t);
  meta.lose = 'after';
  const data = pattern(3 * CHUNK, 1);
  const record = await lilio.putObject('bkt', 'k', pieces(data));
  t.equal(meta.lose, undefined, 'the answer was lost');
  t.equal(record.chunks.length, 3);
  t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(data), 'readable');
  await lilio.chunks.drain();
  for (const chunk of record.chunks) t.equal(await held(stores, chunk), 3, 'every replica kept');
  t.equal(await meta.garbageCount(), 0, 'nothing queued');
});

t.test('a put that did not land is reported, its chunks queued (not deleted), the old version intact', async (t) => {
  const { lilio, meta, stores } = await engine(t);
  const old = await lilio.putObject('bkt', 'k', pieces(pattern(CHUNK, 1)));
  meta.lose = 'instead';
  const before = Date.now();
  const err = await lilio.putObject('bkt', 'k', pieces(pattern(2 * CHUNK, 2))).catch((e: unknown) => e);
  t.type(err, CommitUnknownError);
  t.match((err as Error).message, /not committed/);
  const current = await lilio.headObject('bkt', 'k');
  t.equal(current.versionId, old.versionId, 'the old version is still the visible one');
  t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(pattern(CHUNK, 1)), 'and reads back whole');

  await lilio.chunks.drain();
  const garbage = await queued(meta);
  t.equal(garbage.size, 2, "the new version's two chunks are queued");
  for (const queuedAt of garbage.values()) t.ok(queuedAt >= before, 'queued now, so the grace period runs from now');
  t.notOk(garbage.has(old.chunks[0]!.id), "the old version's chunk is not");
  const fresh = (await meta.peekGarbage(undefined, 10)).map((e) => e.chunk);
  for (const chunk of fresh) t.equal(await held(stores, chunk), 3, 'still stored');

  t.equal((await lilio.collectGarbage({ graceMs: 60_000 })).deleted, 0, 'kept for the grace period');
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 2, 'then collected');
  for (const chunk of fresh) t.equal(await held(stores, chunk), 0);
  t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(pattern(CHUNK, 1)), 'the old version is untouched');
});

t.test('a commit that lands after being reported takes its chunks back off the queue', async (t) => {
  const { lilio, meta, stores } = await engine(t);
  meta.lose = 'instead';
  const data = pattern(2 * CHUNK, 3);
  await t.rejects(lilio.putObject('bkt', 'k', pieces(data)), { code: 'COMMIT_UNKNOWN' });
  t.equal(await meta.garbageCount(), 2);
  await meta.landHeld();
  t.equal(await meta.garbageCount(), 0, 'the landed commit rescued them');
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 0);
  const record = await lilio.headObject('bkt', 'k');
  await lilio.chunks.drain();
  for (const chunk of record.chunks) t.equal(await held(stores, chunk), 3);
  t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(data), 'the late version reads whole');
});

t.test('a store that cannot be read back leaves the outcome unknown and the chunks alone', async (t) => {
  const { lilio, meta, stores } = await engine(t, 300);
  meta.lose = 'after';
  meta.unreachable = Number.POSITIVE_INFINITY;
  const started = Date.now();
  const err = await lilio.putObject('bkt', 'k', pieces(pattern(2 * CHUNK, 4))).catch((e: unknown) => e);
  meta.unreachable = 0;
  t.match(err, { code: 'COMMIT_UNKNOWN', message: /could not be read back/ });
  t.ok(Date.now() - started < 3_000, 'bounded by the read-back budget');
  t.equal(await meta.garbageCount(), 0, 'nothing queued: the commit may have landed (it did)');
  const record = await lilio.headObject('bkt', 'k');
  await lilio.chunks.drain();
  for (const chunk of record.chunks) t.equal(await held(stores, chunk), 3, 'the landed version keeps its chunks');
});

t.test('the read back waits for the store to answer again', async (t) => {
  const { lilio, meta } = await engine(t);
  meta.lose = 'after';
  meta.unreachable = 3;
  const record = await lilio.putObject('bkt', 'k', pieces(pattern(CHUNK, 5)));
  t.equal(meta.unreachable, 0, 'three reads failed before one answered');
  t.equal((await lilio.headObject('bkt', 'k')).versionId, record.versionId);
});

t.test('an attribute change that did not land is not mistaken for its base (same versionId)', async (t) => {
  const { lilio, meta } = await engine(t);
  const base = await lilio.putObject('bkt', 'k', pieces(pattern(CHUNK, 6)));
  const { version, ...rest } = base;
  const draft: ObjectDraft = { ...rest, attrs: { ...base.attrs, mode: 0o600, ctimeMs: base.attrs.ctimeMs + 1 } };
  t.ok(isDraft(base, { ...rest }), 'a record is its own draft');
  t.notOk(isDraft(base, draft), 'the base is not the changed draft');
  meta.lose = 'instead';
  await t.rejects(lilio.commitRecord(draft, { version }), { code: 'COMMIT_UNKNOWN' });
  t.equal(await meta.garbageCount(), 0, 'no fresh chunks: nothing of the base is queued');
  meta.lose = 'after';
  const landed = await lilio.commitRecord(
    { ...draft, attrs: { ...draft.attrs, ctimeMs: draft.attrs.ctimeMs + 1 } },
    'any',
  );
  t.equal(landed.attrs.mode, 0o600);
});

t.test('deletes and renames whose answers were lost are read back', async (t) => {
  const { lilio, meta } = await engine(t);
  const a = await lilio.putObject('bkt', 'a', pieces(pattern(CHUNK, 7)));
  await lilio.putObject('bkt', 'dir/x', pieces(pattern(CHUNK, 8)));

  meta.lose = 'instead';
  await t.rejects(lilio.renameObject('bkt', 'a', 'c'), { code: 'COMMIT_UNKNOWN', message: /was not moved/ });
  t.equal((await lilio.headObject('bkt', 'a')).versionId, a.versionId, 'still at its old name');
  meta.lose = 'after';
  const moved = await lilio.renameObject('bkt', 'a', 'c');
  t.equal(moved.key, 'c');
  t.equal(moved.versionId, a.versionId, 'a landed rename returns the moved record');

  meta.lose = 'instead';
  await t.rejects(lilio.deleteObject('bkt', 'c'), { code: 'COMMIT_UNKNOWN', message: /still there/ });
  t.ok(await lilio.headObject('bkt', 'c'));
  meta.lose = 'after';
  const removed = await lilio.deleteObject('bkt', 'c');
  t.equal(removed?.versionId, a.versionId, 'a landed delete returns what it removed');
  await t.rejects(lilio.headObject('bkt', 'c'), { code: 'NOT_FOUND' });

  meta.lose = 'instead';
  await t.rejects(lilio.renamePrefix('bkt', 'dir/', 'moved/'), { code: 'COMMIT_UNKNOWN' });
  t.ok(await lilio.headObject('bkt', 'dir/x'));
  meta.lose = 'after';
  t.equal(await lilio.renamePrefix('bkt', 'dir/', 'moved/'), 1, 'a landed directory rename counts what moved');
  t.ok(await lilio.headObject('bkt', 'moved/x'));
});
