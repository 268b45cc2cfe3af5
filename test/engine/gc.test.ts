import t from 'tap';
import { pattern, pieces, testEngine } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;

t.test('replaced and deleted chunks are removed only after the grace period', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const v1 = await lilio.putObject('bkt1', 'k', pieces(pattern(2 * CHUNK, 1)));
  await lilio.putObject('bkt1', 'k', pieces(pattern(CHUNK, 2)));
  await lilio.chunks.drain();

  const early = await lilio.collectGarbage({ graceMs: 60_000 });
  t.equal(early.deleted, 0, 'nothing is deleted inside the grace period');
  for (const chunk of v1.chunks)
    t.not(await stores.get(chunk.replicas[0]!)!.stat(chunk.id), undefined, 'v1 chunk still there');

  const late = await lilio.collectGarbage({ graceMs: 0 });
  t.equal(late.deleted, 2, "v1's two chunks deleted");
  for (const chunk of v1.chunks) {
    for (const name of chunk.replicas)
      t.equal(await stores.get(name)!.stat(chunk.id), undefined, `${name} no longer holds it`);
  }
  await lilio.deleteObject('bkt1', 'k');
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 1, 'the deleted object’s chunk goes too');
});

t.test('a chunk whose delete fails stays queued and is retried', async (t) => {
  const { lilio, faults } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  await lilio.putObject('bkt1', 'k', pieces(pattern(CHUNK)));
  await lilio.deleteObject('bkt1', 'k');
  await lilio.chunks.drain();
  faults.get('mem-1')!.failDeletes = true;
  const first = await lilio.collectGarbage({ graceMs: 0 });
  t.equal(first.retried, 1);
  t.equal(await lilio.meta.garbageCount(), 1, 'back on the queue');
  faults.get('mem-1')!.failDeletes = false;
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 1);
  t.equal(await lilio.meta.garbageCount(), 0);
});
