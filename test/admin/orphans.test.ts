import t from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import type { StorageBackend } from '../../src/backends/backend.js';
import { chunkId } from '../contracts/backend.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;
const HOUR = 3_600_000;

async function held(backend: StorageBackend): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const id of backend.list()) ids.add(id);
  return ids;
}

t.test('chunks no version references are deleted once older than the grace period', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const data = pattern(3 * CHUNK);
  const live = await lilio.putObject('bkt1', 'live', pieces(data));
  // Replaced within the grace period: its chunks wait on the garbage queue, which owns them.
  const replaced = await lilio.putObject('bkt1', 'replaced', pieces(pattern(CHUNK, 2)));
  await lilio.putObject('bkt1', 'replaced', pieces(pattern(CHUNK, 3)));
  await lilio.chunks.drain();
  // A writer that crashed before its commit left these.
  const crashed = [chunkId(), chunkId()];
  for (const id of crashed) for (const store of stores.values()) await store.put(id, Buffer.from('half an upload'));
  // An upload in flight right now.
  const inFlight = chunkId();
  await stores.get('mem-1')!.put(inFlight, Buffer.from('still being written'));

  const fresh = await collectOrphans(lilio, { graceMs: HOUR });
  t.match(fresh, { orphans: 0, strays: 0, failed: 0, skipped: [] }, 'nothing is old enough yet');
  t.ok(fresh.young > 0);

  // Everything but the in-flight upload is now two hours old.
  for (const store of stores.values()) for (const id of await held(store)) if (id !== inFlight) store.age(id, 2 * HOUR);
  const dry = await collectOrphans(lilio, { graceMs: HOUR, dryRun: true });
  t.equal(dry.orphans, 6, 'dry run: two crashed chunks on three backends');
  t.ok((await held(stores.get('mem-1')!)).has(crashed[0]!), 'dry run deletes nothing');

  const report = await collectOrphans(lilio, { graceMs: HOUR });
  t.equal(report.orphans, 6);
  t.equal(report.young, 1, 'the in-flight chunk was too young to look at');
  for (const store of stores.values()) {
    const ids = await held(store);
    for (const id of crashed) t.notOk(ids.has(id), `${store.name}: crashed upload's chunk gone`);
    for (const chunk of live.chunks) t.ok(ids.has(chunk.id), `${store.name}: live chunk kept`);
    for (const chunk of replaced.chunks) t.ok(ids.has(chunk.id), `${store.name}: queued chunk left to the queue`);
  }
  t.ok((await held(stores.get('mem-1')!)).has(inFlight), 'the in-flight upload is untouched');
  t.ok((await collect(lilio.getObject('bkt1', 'live'))).equals(data));
});

t.test('a replica outside its chunk’s replica set is a stray and goes; the set keeps its replicas', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 }, { backendCount: 4 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const record = await lilio.putObject('bkt1', 'k', pieces(pattern(4 * CHUNK)));
  await lilio.chunks.drain();
  const chunk = record.chunks[0]!;
  const outsider = [...stores.keys()].find((name) => !chunk.replicas.includes(name))!;
  await stores.get(outsider)!.put(chunk.id, await stores.get(chunk.replicas[0]!)!.get(chunk.id));
  for (const store of stores.values()) for (const id of await held(store)) store.age(id, 2 * HOUR);
  const report = await collectOrphans(lilio, { graceMs: HOUR });
  t.match(report, { orphans: 0, strays: 1 });
  t.notOk((await held(stores.get(outsider)!)).has(chunk.id), 'the stray replica is gone');
  for (const name of chunk.replicas) t.ok((await held(stores.get(name)!)).has(chunk.id), `${name} keeps its replica`);
});

t.test('backends that cannot tell ages or are down are skipped, never guessed at', async (t) => {
  const { lilio, stores, faults } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  const orphan = chunkId();
  for (const store of stores.values()) {
    await store.put(orphan, Buffer.from('x'));
    store.age(orphan, 2 * HOUR);
  }
  // mem-1 loses its ability to report ages (an S3 or Drive backend without it).
  Object.defineProperty(faults.get('mem-1')!, 'listEntries', { value: undefined });
  faults.get('mem-2')!.down = true;
  await lilio.backends.probeAll();
  const report = await collectOrphans(lilio, { graceMs: HOUR });
  t.equal(report.orphans, 1, 'deleted only on mem-3');
  t.same(report.skipped.map((s) => s.backend).sort(), ['mem-1', 'mem-2']);
  t.match(report.skipped.find((s) => s.backend === 'mem-1')!.reason, /cannot tell how old/);
  t.ok((await held(stores.get('mem-1')!)).has(orphan));
  t.ok((await held(stores.get('mem-2')!)).has(orphan));
  t.notOk((await held(stores.get('mem-3')!)).has(orphan));
});
