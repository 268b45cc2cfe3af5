import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LocalBackend } from '../../src/backends/local.js';
import { newChunkId as chunkId } from '../../src/core/chunk-id.js';
import type { ChunkRef } from '../../src/core/types.js';
import { Lilio } from '../../src/engine/lilio.js';
import { collectStatus } from '../../src/engine/status.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { collect, pattern, pieces, testConfig } from '../fixtures/engine.js';
import { FaultyBackend } from '../fixtures/faulty-backend.js';

// Pending repairs live in the metadata store: what one engine could not repair, the next one does.
// Real persistence: an embedded SQLite store and local disks, reopened by each engine.
const CHUNK = 64 * 1024;

function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-repairs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = testConfig({
    storages: [1, 2, 3].map((i) => ({ name: `disk-${i}`, type: 'local' as const, path: join(dir, String(i)) })),
    chunkSize: CHUNK,
    inlineThreshold: 0,
    cache: { size: 0 },
    backends: { timeoutMs: 10_000, probeIntervalMs: 50 },
  });
  const meta = () => LocalMetadataStore.open({ path: join(dir, 'meta') });
  /** An engine over the same disks and store, each disk behind a fault switch. */
  const open = async () => {
    const faults = new Map(
      config.storages.map((s) => [
        s.name,
        new FaultyBackend(new LocalBackend({ name: s.name, path: join(dir, s.name.slice(-1)) })),
      ]),
    );
    const lilio = await Lilio.open(config, { backends: [...faults.values()], meta: meta() });
    return { lilio, faults };
  };
  const recorded = async () => {
    const store = meta();
    try {
      return await store.peekRepairs(undefined, 100);
    } finally {
      await store.close();
    }
  };
  return { open, recorded };
}

const holds = async (lilio: Lilio, name: string, chunk: ChunkRef) =>
  (await lilio.backends.backend(name)!.stat(chunk.id)) !== undefined;

t.test(
  'a read finds a replica missing, the repair fails, the process closes: the next engine repairs it',
  async (t) => {
    const { open, recorded } = setup(t);
    const first = await open();
    await first.lilio.createBucket('bkt');
    const data = pattern(CHUNK, 3);
    const record = await first.lilio.putObject('bkt', 'k', pieces(data));
    await first.lilio.chunks.drain();
    const chunk = record.chunks[0]!;
    const victim = chunk.replicas[0]!;
    await first.faults.get(victim)!.inner.delete(chunk.id);
    first.faults.get(victim)!.failPuts = true; // the disk refuses writes for now
    t.ok((await collect(first.lilio.getObject('bkt', 'k'))).equals(data), 'read from another replica');
    await first.lilio.close();
    t.strictSame(
      (await recorded()).map((e) => [e.chunk.id, e.backends]),
      [[chunk.id, [victim]]],
      'the unfinished repair outlived its process',
    );

    const second = await open();
    t.teardown(() => second.lilio.close());
    t.notOk(await holds(second.lilio, victim, chunk), 'still missing');
    t.equal((await collectStatus(second.lilio)).repair.recorded, 1, 'status counts the recorded backlog');
    t.same(await second.lilio.finishRepairs(), { repaired: 1, waiting: 0 });
    t.ok(await holds(second.lilio, victim, chunk), 'repaired by the new engine');
    t.same(await recorded(), [], 'and taken off the queue');
  },
);

t.test('writes that miss a down backend are recorded; a mount started later repairs them', async (t) => {
  const { open, recorded } = setup(t);
  const first = await open();
  await first.lilio.createBucket('bkt');
  first.faults.get('disk-2')!.down = true;
  await first.lilio.backends.probeAll();
  const record = await first.lilio.putObject('bkt', 'k', pieces(pattern(4 * CHUNK)));
  const missed = record.chunks.filter((c) => c.replicas.includes('disk-2'));
  t.ok(missed.length > 0, 'some chunks belong on disk-2');
  await first.lilio.close();
  t.equal((await recorded()).length, missed.length, 'one entry per chunk that missed disk-2');

  // A mount or server: startBackgroundGc takes the recorded backlog on.
  const second = await open();
  t.teardown(() => second.lilio.close());
  second.lilio.startBackgroundGc(60_000);
  const deadline = Date.now() + 10_000;
  const repaired = async () => {
    for (const chunk of missed) if (!(await holds(second.lilio, 'disk-2', chunk))) return false;
    return true;
  };
  while (!(await repaired()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.ok(await repaired(), 'every missed replica written to disk-2');
  await second.lilio.chunks.repairs.whenIdle();
  await second.lilio.close();
  t.same(await recorded(), [], 'nothing left recorded once the process has written it down');
});

t.test(
  'the queue is bounded by chunks: found missing again and again, a replica is one entry; a chunk gone is dropped',
  async (t) => {
    const { open, recorded } = setup(t);
    const first = await open();
    await first.lilio.createBucket('bkt');
    const record = await first.lilio.putObject('bkt', 'k', pieces(pattern(CHUNK, 5)));
    await first.lilio.chunks.drain();
    const chunk = record.chunks[0]!;
    const victim = chunk.replicas[0]!; // the replica a read asks first
    await first.faults.get(victim)!.inner.delete(chunk.id);
    first.faults.get(victim)!.failPuts = true;
    for (let i = 0; i < 5; i++) await collect(first.lilio.getObject('bkt', 'k'));
    // A chunk the queue names but no backend holds any more (deleted since, or lost).
    const gone: ChunkRef = { ...chunk, id: chunkId() };
    await first.lilio.meta.queueRepairs([{ chunk: gone, backends: ['disk-1'], queuedAt: Date.now() }]);
    await first.lilio.close();
    t.equal((await recorded()).length, 2);
    t.same((await recorded()).find((e) => e.chunk.id === chunk.id)?.backends, [victim], 'five reads, one entry');

    const second = await open();
    t.teardown(() => second.lilio.close());
    t.same(await second.lilio.finishRepairs(), { repaired: 1, waiting: 0 }, 'the gone chunk is dropped, not retried');
  },
);
