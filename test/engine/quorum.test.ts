import t from 'tap';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;

async function held(ids: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of ids) out.push(id);
  return out;
}

t.test('one backend down: writes succeed with W replicas, intent names all three, repair fills the gap', async (t) => {
  const { lilio, faults, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  faults.get('mem-2')!.failPuts = true;
  const data = pattern(4 * CHUNK);
  const record = await lilio.putObject('bkt1', 'k', pieces(data));
  for (const chunk of record.chunks)
    t.same([...chunk.replicas].sort(), ['mem-1', 'mem-2', 'mem-3'], 'intent keeps mem-2');
  t.equal((await held(stores.get('mem-2')!.list())).length, 0, 'mem-2 missed every write');
  t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(data), 'data reads back');

  faults.get('mem-2')!.failPuts = false;
  await lilio.backends.probeDown();
  await lilio.chunks.drain();
  // Failed attempts wait in backoff (mem-2 may never have been marked down: its NotFound answers
  // to reads count as healthy); take them now rather than after seconds of backoff.
  lilio.chunks.repairs.retryNow();
  await lilio.chunks.repairs.whenIdle();
  const onTwo = new Set(await held(stores.get('mem-2')!.list()));
  for (const chunk of record.chunks) t.ok(onTwo.has(chunk.id), `chunk ${chunk.id.slice(0, 6)} repaired onto mem-2`);
});

t.test(
  'two backends down: the put fails with a QuorumError naming them, leaves nothing, keeps the old version',
  async (t) => {
    const { lilio, faults, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
    t.teardown(() => lilio.close());
    await lilio.createBucket('bkt1');
    const v1 = pattern(2 * CHUNK, 1);
    await lilio.putObject('bkt1', 'k', pieces(v1));
    const before = new Set(await held(stores.get('mem-1')!.list()));

    faults.get('mem-2')!.failPuts = true;
    faults.get('mem-3')!.failPuts = true;
    const err = await lilio.putObject('bkt1', 'k', pieces(pattern(3 * CHUNK, 2))).catch((e: unknown) => e);
    t.match(err, { code: 'QUORUM', name: 'QuorumError' });
    t.match((err as Error).message, /mem-2/);
    t.match((err as Error).message, /mem-3/);
    t.same(new Set(await held(stores.get('mem-1')!.list())), before, 'the replicas written to mem-1 were rolled back');
    t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(v1), 'the previous version is intact');
  },
);

t.test('a missing replica is served from another and rewritten (read repair)', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0, cache: { size: 0 } });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const data = pattern(CHUNK * 2);
  const record = await lilio.putObject('bkt1', 'k', pieces(data));
  await lilio.chunks.drain();
  const chunk = record.chunks[0]!;
  const victim = stores.get(chunk.replicas[0]!)!;
  await victim.delete(chunk.id);
  t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(data), 'read succeeds');
  await lilio.chunks.repairs.whenIdle();
  t.equal(await victim.stat(chunk.id), chunk.storedSize, 'replica restored');
});

t.test('a corrupt replica is never returned, is counted, and is repaired', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0, cache: { size: 0 } });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const data = pattern(CHUNK);
  const record = await lilio.putObject('bkt1', 'k', pieces(data));
  await lilio.chunks.drain();
  const chunk = record.chunks[0]!;
  const victim = stores.get(chunk.replicas[0]!)!;
  const bytes = await victim.get(chunk.id);
  bytes[100] = bytes[100]! ^ 0x01;
  await victim.put(chunk.id, bytes);
  t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(data), 'correct bytes despite the flipped bit');
  await lilio.chunks.repairs.whenIdle();
  t.ok((await victim.get(chunk.id)).equals(await stores.get(chunk.replicas[1]!)!.get(chunk.id)), 'replica rewritten');
});

t.test('strict reads need R verified replicas', async (t) => {
  const { lilio, stores } = await testEngine({
    chunkSize: CHUNK,
    inlineThreshold: 0,
    cache: { size: 0 },
    quorum: { n: 3, w: 2, r: 2, readMode: 'strict' },
  });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const data = pattern(CHUNK);
  const record = await lilio.putObject('bkt1', 'k', pieces(data));
  await lilio.chunks.drain();
  const chunk = record.chunks[0]!;
  await stores.get(chunk.replicas[0]!)!.delete(chunk.id);
  t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(data), 'two good replicas satisfy R=2');
  await lilio.chunks.repairs.whenIdle();
  await stores.get(chunk.replicas[0]!)!.delete(chunk.id);
  await stores.get(chunk.replicas[1]!)!.delete(chunk.id);
  await t.rejects(collect(lilio.getObject('bkt1', 'k')), { code: 'QUORUM' }, 'one good replica is not enough');
});

t.test('a slow replica is hedged: the read does not wait for it', async (t) => {
  const { lilio, faults } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0, cache: { size: 0 } });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const data = pattern(CHUNK);
  const record = await lilio.putObject('bkt1', 'k', pieces(data));
  await lilio.chunks.drain();
  faults.get(record.chunks[0]!.replicas[0]!)!.hang = true;
  const started = performance.now();
  t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(data));
  const elapsed = performance.now() - started;
  t.ok(
    elapsed < 1_500,
    `served by the next replica after the 200 ms hedge, not the 2 s deadline (${Math.round(elapsed)} ms)`,
  );
  faults.get(record.chunks[0]!.replicas[0]!)!.hang = false;
});

t.test('W + R > N and N <= backends are enforced', async (t) => {
  const { testConfig } = await import('../fixtures/engine.js');
  t.throws(() => testConfig({ quorum: { n: 3, w: 1, r: 1 } }));
  t.throws(() => testConfig({ quorum: { n: 4, w: 3, r: 2 } }, 3));
});
