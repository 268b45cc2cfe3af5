import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Lilio } from '../../src/engine/lilio.js';
import { pattern, pieces, testConfig, testEngine } from '../fixtures/engine.js';

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

t.test('background gc (mount, server) sweeps temporary files older than the grace period', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-gc-tmp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = testConfig({
    storages: [1, 2, 3].map((i) => ({ name: `disk-${i}`, type: 'local' as const, path: join(dir, String(i)) })),
    gc: { graceSeconds: 3600 },
  });
  const lilio = await Lilio.open(config);
  t.teardown(() => lilio.close());
  const id = 'ab'.repeat(16);
  const sub = join(dir, '2', 'ab', 'ab');
  mkdirSync(sub, { recursive: true });
  const old = join(sub, `.${id}.0123456789ab.tmp`);
  const young = join(sub, `.${id}.ba9876543210.tmp`);
  for (const file of [old, young]) writeFileSync(file, 'half a chunk');
  const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
  utimesSync(old, twoHoursAgo, twoHoursAgo);
  lilio.startBackgroundGc(20);
  const deadline = Date.now() + 5_000;
  while (existsSync(old) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.notOk(existsSync(old), 'the old temporary file went at the first round');
  t.ok(existsSync(young), 'the young one stays');
});
