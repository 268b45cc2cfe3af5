import { existsSync, mkdtempSync, realpathSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ok, run, sleep, startMount } from '../fixtures/mount.js';

// `df` on the embedded default (three local backends in one $LILIO_HOME, N=3) reports the free
// space users can fill: the filesystem's once, divided by the three replicas of every byte.

const MiB = 1024 * 1024;
/** The mount answers statfs from a 5 s cache (src/fs/vfs.ts STATFS_TTL_MS). */
const STATFS_TTL_MS = 5_000;
/** Others may write to the same filesystem between two readings. */
const TOLERANCE = 16 * MiB;

async function df(t: Test, dir: string): Promise<{ size: number; avail: number }> {
  const result = await ok(t, run('df', ['-B1', '--output=size,avail', dir]), 'df');
  const [size, avail] = result.stdout.trim().split('\n').pop()!.trim().split(/\s+/).map(Number);
  return { size: size!, avail: avail! };
}

t.test('df tells the space users can write, and moves by what they write', async (t) => {
  // tmpfs when there is one: other processes writing to the disk would move its free space under the test.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const home = realpathSync(mkdtempSync(join(base, 'lilio-statfs-')));
  const m = await startMount(t, { home });
  // Registered after the mount's own teardown, so it runs once the mount is gone.
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  await ok(t, run('mkdir', [join(m.dir, 'fill')]), 'a bucket');

  // df and a reading of the filesystem right after it: others' writes hardly come between.
  const reading = async () => {
    const mount = await df(t, m.dir);
    const raw = statfsSync(home);
    return { mount, free: raw.bavail * raw.bsize, total: raw.blocks * raw.bsize };
  };
  const before = await reading();
  t.ok(
    Math.abs(before.mount.avail - before.free / 3) < TOLERANCE,
    `available ${(before.mount.avail / MiB).toFixed(0)} MiB is a third of the filesystem's ${(before.free / MiB).toFixed(0)} MiB`,
  );
  t.ok(Math.abs(before.mount.size - before.total / 3) < TOLERANCE, 'and so is the size');

  await ok(
    t,
    run('dd', ['if=/dev/urandom', `of=${join(m.dir, 'fill', 'blob')}`, 'bs=1M', 'count=64', 'status=none']),
    'write 64 MiB',
  );
  // The third replica may land after close returns; then the cached answer must expire.
  await sleep(STATFS_TTL_MS + 1_000);
  const after = await reading();
  t.ok(Math.abs(after.mount.avail - after.free / 3) < TOLERANCE, 'still a third after writing');
  const used = before.mount.avail - after.mount.avail;
  const rawUsed = before.free - after.free;
  // Only when nobody else wrote to the filesystem meanwhile does the difference tell anything.
  if (Math.abs(rawUsed - 3 * 64 * MiB) < TOLERANCE) {
    t.ok(Math.abs(used - 64 * MiB) < TOLERANCE, `writing 64 MiB moved df by ${(used / MiB).toFixed(1)} MiB`);
  } else {
    t.comment(
      `others used ${((rawUsed - 3 * 64 * MiB) / MiB).toFixed(1)} MiB meanwhile: the difference is not checked`,
    );
  }
});
