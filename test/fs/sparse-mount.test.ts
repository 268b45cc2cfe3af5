import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localDir, type MountedLilio, ok, run, sh, startMount } from '../fixtures/mount.js';

// Sparse files and small writes through a real mount, with the tools people use. Every size here is
// logical: what lands on disk is asserted to be about what was written, so nothing here can fill it.

const MiB = 1024 * 1024;
const PiB = 2 ** 50;
let m: MountedLilio;
let B: string;

/** Bytes the three local backends hold (the chunk files). */
async function backendBytes(): Promise<number> {
  const du = await run('du', ['-sb', join(m.home, 'data')]);
  return Number(du.stdout.split(/\s/)[0]);
}

function rssKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

t.before(async () => {
  m = await startMount(t);
  B = join(m.dir, 'sparse');
  await ok(t, run('mkdir', [B]), 'mkdir a bucket');
});

t.test('truncate -s 1P is quick, stores nothing and keeps the mount small; past the maximum is EFBIG', async (t) => {
  const file = join(B, 'huge');
  const before = await backendBytes();
  const rss = rssKiB(m.pid);
  const started = performance.now();
  await ok(t, run('truncate', ['-s', '1P', file]), 'truncate -s 1P');
  const took = performance.now() - started;
  t.ok(took < 1000, `took ${took.toFixed(0)} ms`);
  t.equal(statSync(file).size, PiB);
  t.equal(statSync(file).blocks, 0, 'st_blocks: nothing allocated');
  const grown = (await backendBytes()) - before;
  t.ok(grown < 64 * 1024, `backends grew by ${grown} bytes`);
  t.ok(rssKiB(m.pid) - rss < 32 * 1024, `mount RSS ${rss} -> ${rssKiB(m.pid)} KiB`);
  const cut = await run('truncate', ['-s', String(PiB + 1), file]);
  t.not(cut.code, 0, 'one byte past the maximum fails');
  t.match(cut.stderr, /File too large/, 'with EFBIG');
  const head = await ok(
    t,
    sh('dd if="$1" bs=4096 skip=1000000 count=1 status=none | od -An -v -tx1 | sort -u', [file]),
    'dd | od',
  );
  t.equal(head.stdout.trim(), '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00', 'a hole reads as zeros');
  await ok(t, run('rm', [file]), 'rm');
});

t.test('truncate -s 10G and dd seek= past the end store only what was written', async (t) => {
  const before = await backendBytes();
  await ok(t, run('truncate', ['-s', '10G', join(B, 'ten')]), 'truncate -s 10G');
  await ok(
    t,
    run('dd', ['if=/dev/urandom', `of=${join(B, 'seek')}`, 'bs=4096', 'count=4', 'seek=2621440', 'status=none']),
    'dd seek= 10 GiB past the start',
  );
  const grown = (await backendBytes()) - before;
  // Three replicas of 16 KiB, plus each backend's directory entries.
  t.ok(grown < 3 * 16 * 1024 + 256 * 1024, `backends grew by ${grown} bytes`);
  t.equal(statSync(join(B, 'seek')).size, 2621444 * 4096);
  const du = await ok(t, run('du', ['-k', join(B, 'seek'), join(B, 'ten')]), 'du');
  t.match(du.stdout, /^16\s/m, 'du counts the 16 KiB written');
  t.match(du.stdout, /^0\s.*ten$/m, 'and nothing for the 10 GiB hole');
});

t.test('cp --sparse=always keeps holes; du agrees with the data; the bytes round-trip', async (t) => {
  const local = localDir(t);
  const src = join(local, 'holes');
  // 64 MiB logical, 3 MiB of data in three places.
  await ok(t, run('truncate', ['-s', '64M', src]), 'truncate a local file');
  for (const mib of [0, 20, 63]) {
    await ok(
      t,
      run('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=1', `seek=${mib}`, 'conv=notrunc', 'status=none']),
      'dd data into it',
    );
  }
  const before = await backendBytes();
  await ok(t, run('cp', ['--sparse=always', src, join(B, 'holes')]), 'cp --sparse=always');
  await ok(t, run('cmp', [src, join(B, 'holes')]), 'cmp');
  const grown = (await backendBytes()) - before;
  t.ok(grown < 3 * 3 * MiB + MiB, `backends grew by ${(grown / MiB).toFixed(1)} MiB for 3 MiB of data`);
  const du = await ok(t, run('du', ['-k', join(B, 'holes')]), 'du');
  t.equal(Number(du.stdout.split(/\s/)[0]), 3 * 1024, 'du on the mount counts the 3 MiB of data');
});

t.test('fio: 4 KiB random writes with fsync every 64, verified', async (t) => {
  const before = await backendBytes();
  await ok(
    t,
    run('fio', [
      '--name=randwrite',
      `--filename=${join(B, 'fio.dat')}`,
      '--size=16M',
      '--bs=4k',
      '--rw=randwrite',
      '--fsync=64',
      '--ioengine=psync',
      '--verify=crc32c',
      '--verify_fatal=1',
      '--randrepeat=1',
    ]),
    'fio randwrite with verify',
  );
  t.equal(statSync(join(B, 'fio.dat')).size, 16 * MiB);
  // After close the file is compacted; the garbage of slices goes with gc. What stays is bounded.
  const grown = (await backendBytes()) - before;
  t.ok(grown < 6 * 3 * 16 * MiB, `backends grew by ${(grown / MiB).toFixed(1)} MiB for a 16 MiB file`);
  writeFileSync(join(B, 'after'), 'still answering');
  t.equal(readFileSync(join(B, 'after'), 'utf8'), 'still answering');
});
