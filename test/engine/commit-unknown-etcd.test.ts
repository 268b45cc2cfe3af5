import t, { type Test } from 'tap';
import type { MemoryBackend } from '../../src/backends/memory.js';
import type { ChunkRef } from '../../src/core/types.js';
import type { Lilio } from '../../src/engine/lilio.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';
import { startEtcd } from '../fixtures/etcd.js';
import { lossyEtcd } from '../fixtures/lossy-etcd.js';

// An engine put (ObjectWriter) on a real etcd whose commit answer is lost on the wire (a TCP
// proxy swallows it, or the commit itself): the outcome is read back once etcd answers again,
// and the object ends either committed with every chunk stored, or at its old version with the
// new chunks queued as garbage, never as a record pointing at deleted chunks.

const etcd = await startEtcd(t);
const CHUNK = 64 * 1024;
/** Longer than the store's requestTimeoutMs (1 s): the store gives up, the engine must decide. */
const OUTAGE_MS = 2_500;

async function setup(t: Test, requestTimeoutMs = 1_000) {
  const lossy = await lossyEtcd(t, etcd, { requestTimeoutMs });
  const engine = await testEngine(
    { chunkSize: CHUNK, inlineThreshold: 0 },
    { meta: lossy.store, commitReadBackMs: 20_000 },
  );
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('bkt');
  return { ...lossy, ...engine };
}

/** Every replica of every chunk of the current version is stored. */
async function wholeOnBackends(lilio: Lilio, stores: Map<string, MemoryBackend>, key: string): Promise<boolean> {
  await lilio.chunks.drain();
  const record = await lilio.headObject('bkt', key);
  for (const chunk of record.chunks) if ((await replicas(stores, chunk)) !== chunk.replicas.length) return false;
  return true;
}

async function replicas(stores: Map<string, MemoryBackend>, chunk: ChunkRef): Promise<number> {
  let n = 0;
  for (const name of chunk.replicas) if ((await stores.get(name)!.stat(chunk.id)) !== undefined) n++;
  return n;
}

t.test('a commit applied by etcd whose answer is lost: the put succeeds, every chunk kept', async (t) => {
  const { lilio, stores, store, proxy, putFailures, loseNextCommit } = await setup(t);
  const old = await lilio.putObject('bkt', 'k', pieces(pattern(CHUNK, 1)));
  const restored = loseNextCommit('swallow', OUTAGE_MS);
  const data = pattern(3 * CHUNK, 2);
  const record = await lilio.putObject('bkt', 'k', pieces(data));
  await restored;
  t.match(putFailures, [{ code: 'COMMIT_UNKNOWN' }], 'the store could not tell: the engine read it back');
  t.ok(proxy.dropped.down > 0, 'answers were dropped on the wire');
  t.equal((await lilio.headObject('bkt', 'k')).versionId, record.versionId, 'the new version is the visible one');
  t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(data), 'and reads back whole');
  t.ok(await wholeOnBackends(lilio, stores, 'k'), 'every replica of every chunk is stored');
  const queued = new Set((await store.peekGarbage(undefined, 100)).map((e) => e.chunk.id));
  t.strictSame([...queued], [old.chunks[0]!.id], 'only the replaced version is garbage');
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 1);
  t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(data), 'still whole after garbage collection');
});

t.test(
  'a commit that never reached etcd: the put fails, the old version stays, the chunks wait as garbage',
  async (t) => {
    const { lilio, stores, store, putFailures, loseNextCommit } = await setup(t);
    const oldData = pattern(2 * CHUNK, 3);
    const old = await lilio.putObject('bkt', 'k', pieces(oldData));
    const restored = loseNextCommit('blackhole', OUTAGE_MS);
    const before = Date.now();
    const err = await lilio.putObject('bkt', 'k', pieces(pattern(3 * CHUNK, 4))).catch((e: unknown) => e);
    await restored;
    t.match(putFailures, [{ code: 'COMMIT_UNKNOWN' }]);
    t.match(err, { code: 'COMMIT_UNKNOWN', message: /not committed/ }, 'reported (EIO on a mount)');
    t.equal((await lilio.headObject('bkt', 'k')).versionId, old.versionId, 'the old version is the visible one');
    t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(oldData), 'and reads back whole');
    t.ok(await wholeOnBackends(lilio, stores, 'k'));

    const garbage = await store.peekGarbage(undefined, 100);
    t.equal(garbage.length, 3, "the new version's three chunks are queued, not deleted");
    t.notOk(
      garbage.some((e) => old.chunks.some((c) => c.id === e.chunk.id)),
      "none of the old version's chunks is queued",
    );
    for (const entry of garbage) {
      t.ok(entry.queuedAt >= before, 'queued from now: the grace period covers a late landing');
      t.equal(await replicas(stores, entry.chunk), 3, 'still stored');
    }
    t.equal((await lilio.collectGarbage({ graceMs: 60_000 })).deleted, 0);
    t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 3, 'collected once the grace period has passed');
    t.ok((await collect(lilio.getObject('bkt', 'k'))).equals(oldData), 'the old version is untouched');
  },
);

t.test('an outage shorter than the request timeout is decided by the store itself', async (t) => {
  // Long enough for a member that failed twice to be skipped (1 s) and asked again.
  const { lilio, stores, putFailures, loseNextCommit } = await setup(t, 4_000);
  for (const mode of ['swallow', 'blackhole'] as const) {
    const restored = loseNextCommit(mode, 300);
    const data = pattern(2 * CHUNK, mode.length);
    const record = await lilio.putObject('bkt', mode, pieces(data));
    await restored;
    t.equal((await lilio.headObject('bkt', mode)).versionId, record.versionId, `${mode}: committed`);
    t.ok((await collect(lilio.getObject('bkt', mode))).equals(data));
    t.ok(await wholeOnBackends(lilio, stores, mode));
  }
  t.strictSame(putFailures, [], 'the store found (or re-sent) its commit without giving up');
});
