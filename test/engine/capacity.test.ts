import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/backends/local.js';
import { usableCapacity } from '../../src/engine/capacity.js';
import { Lilio } from '../../src/engine/lilio.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import { pattern, pieces, testConfig } from '../fixtures/engine.js';

// tmpfs when there is one: other processes writing to the disk move its free space under the test.
const BASE = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const MiB = 1024 * 1024;
/** Others may still write between two readings of the filesystem (etcd preallocates 64 MiB WAL files). */
const TOLERANCE = 16 * MiB;

const freeOf = (dir: string) => {
  const fs = statfsSync(dir);
  return { total: fs.blocks * fs.bsize, free: fs.bavail * fs.bsize };
};

t.test('three local backends on one filesystem count it once, divided by N', async (t) => {
  const dir = mkdtempSync(join(BASE, 'lilio-capacity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const backends = [1, 2, 3].map((i) => new LocalBackend({ name: `disk-${i}`, path: join(dir, String(i)) }));
  const config = testConfig({
    quorum: { n: 3, w: 3, r: 1 },
    inlineThreshold: 0,
    backends: { timeoutMs: 60_000, probeIntervalMs: 1_000 },
  });
  const lilio = await Lilio.open(config, { backends, meta: new MemoryMetadataStore() });
  t.teardown(() => lilio.close());

  // Each reading of the engine is taken next to one of the filesystem, so others' writes hardly come between.
  const reading = async () => ({ engine: await lilio.capacity(), raw: freeOf(dir) });
  const before = await reading();
  t.equal(before.engine.totalBytes, Math.floor(before.raw.total / 3), 'total: the filesystem once, over N=3');
  t.ok(
    Math.abs(before.engine.freeBytes - before.raw.free / 3) < TOLERANCE,
    `free ${before.engine.freeBytes} ~ ${before.raw.free} / 3`,
  );

  await lilio.createBucket('data');
  const data = pattern(64 * MiB);
  const start = await reading();
  await lilio.putObject('data', 'big', pieces(data, MiB));
  await lilio.chunks.drain();
  const after = await reading();
  t.ok(Math.abs(after.engine.freeBytes - after.raw.free / 3) < TOLERANCE, 'still a third after writing');
  const used = start.engine.freeBytes - after.engine.freeBytes;
  const rawUsed = start.raw.free - after.raw.free;
  // Only when nobody else wrote to the filesystem meanwhile does the difference tell anything.
  if (Math.abs(rawUsed - 3 * 64 * MiB) < TOLERANCE) {
    t.ok(Math.abs(used - 64 * MiB) < TOLERANCE, `writing 64 MiB took ${(used / MiB).toFixed(1)} MiB of free space`);
  } else {
    t.comment(
      `others used ${((rawUsed - 3 * 64 * MiB) / MiB).toFixed(1)} MiB meanwhile: the difference is not checked`,
    );
  }
});

t.test('usableCapacity: shared devices once, others each, silent backends not at all', async (t) => {
  const info = (name: string, totalBytes: number, freeBytes: number, device?: string) => ({
    name,
    type: 'test',
    location: name,
    totalBytes,
    freeBytes,
    ...(device ? { device } : {}),
  });
  t.strictSame(
    usableCapacity(
      [
        info('a', 900, 600, 'local:1'),
        info('b', 900, 600, 'local:1'),
        info('c', 300, 150, 'local:2'),
        info('s3', 1200, 900),
        info('drive', 1200, 900),
        { name: 'quiet', type: 'test', location: 'x' },
        undefined,
      ],
      3,
    ),
    { totalBytes: (900 + 300 + 1200 + 1200) / 3, freeBytes: (600 + 150 + 900 + 900) / 3 },
  );
});
