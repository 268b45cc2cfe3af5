import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { localDir, ok, run, sh, sleep, startMount } from '../fixtures/mount.js';

// Backends that run out of space: a write that cannot reach its write quorum fails at close (cp
// exits non-zero), the previous version stays whole, and the mount stays up.

const MiB = 1024 * 1024;

/** Mounts a small tmpfs; the reason it cannot, or undefined. */
function mountTmpfs(dir: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? err).trim();
  }
}

function unmountTmpfs(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
}

const probeDir = mkdtempSync(join(tmpdir(), 'lilio-fs-tmpfs-probe-'));
const cannot = mountTmpfs(probeDir, '1m');
if (!cannot) unmountTmpfs(probeDir);
rmSync(probeDir, { recursive: true, force: true });

t.test(
  'two full backends: cp fails at close, the old version stays, the mount stays up',
  { skip: cannot ? `cannot mount tmpfs here (${cannot})` : false },
  async (t) => {
    const root = localDir(t, 'lilio-fs-tmpfs-');
    const disks = [1, 2, 3].map((i) => join(root, `disk-${i}`));
    for (const disk of disks) {
      mkdirSync(disk);
      const why = mountTmpfs(disk, '4m');
      if (why) throw new Error(`mount tmpfs on ${disk}: ${why}`);
    }
    // Registered before the Lilio mount, so it runs after the mount has stopped.
    t.teardown(() => disks.forEach(unmountTmpfs));

    const m = await startMount(t, {
      config: {
        metadata: { type: 'local', path: 'meta' },
        storages: disks.map((disk, i) => ({ name: `tmpfs-${i + 1}`, type: 'local', path: join(disk, 'chunks') })),
        quorum: { n: 3, w: 2, r: 2 },
        backends: { timeoutMs: 5_000, probeIntervalMs: 100 },
      },
    });
    const local = localDir(t);
    const oldFile = join(local, 'old.bin');
    const newFile = join(local, 'new.bin');
    writeFileSync(oldFile, randomBytes(MiB + 123));
    writeFileSync(newFile, randomBytes(10 * MiB));
    const bucket = join(m.dir, 'full');
    await ok(t, run('mkdir', [bucket]), 'a bucket');
    await ok(t, run('cp', [oldFile, join(bucket, 'file.bin')]), 'cp the old version while there is room');
    await ok(t, run('cmp', [oldFile, join(bucket, 'file.bin')]), 'it reads back');

    // Fill two of the three backends to the last byte: no chunk can get two replicas now.
    for (const disk of disks.slice(0, 2)) await sh('cat /dev/zero > "$1/filler"', [disk]);
    for (const disk of disks.slice(0, 2)) {
      const df = await ok(t, run('df', ['-B1', '--output=avail', disk]), 'df the tmpfs');
      t.ok(Number(df.stdout.trim().split('\n')[1]) < 64 * 1024, `${disk} is full`);
    }

    const over = await run('cp', [newFile, join(bucket, 'file.bin')]);
    t.not(over.code, 0, 'cp over the old version fails');
    t.match(over.stderr, /Input\/output error|No space left on device/, 'with EIO (or ENOSPC)', {
      stderr: over.stderr,
    });
    t.comment(`cp said: ${over.stderr.trim()}`);
    t.equal(statSync(join(bucket, 'file.bin')).size, MiB + 123, 'the old size');
    await ok(t, run('cmp', [oldFile, join(bucket, 'file.bin')]), 'the old version is intact');

    const fresh = await run('cp', [newFile, join(bucket, 'fresh.bin')]);
    t.not(fresh.code, 0, 'cp to a new name fails too');
    const listed = await m.cli(['ls', 'full']);
    t.equal(listed.code, 0, 'lilio ls', { stderr: listed.stderr });
    t.notMatch(listed.stdout.toString(), /fresh\.bin/, 'and no object was committed for it');

    t.doesNotThrow(() => process.kill(m.pid, 0), 'the mount process is alive');
    const ls = await ok(t, run('ls', ['-l', bucket]), 'ls still works');
    t.match(ls.stdout, /file\.bin/);
    await ok(t, run('cmp', [oldFile, join(bucket, 'file.bin')]), 'reads still work');

    // The failed writes left nothing behind: the replicas that did land were deleted.
    await sleep(300);
    const du = await ok(t, run('du', ['-sb', join(disks[2]!, 'chunks')]), 'du the backend that had room');
    const held = Number(du.stdout.split(/\s/)[0]);
    t.ok(held < MiB + 123 + 256 * 1024, `it holds about the old version only (${held} bytes)`);

    // Room again (each backend holds a replica of every chunk, so 4 MiB disks take a 2 MiB file).
    for (const disk of disks.slice(0, 2)) rmSync(join(disk, 'filler'));
    await sleep(500);
    const smaller = join(local, 'smaller.bin');
    writeFileSync(smaller, randomBytes(2 * MiB));
    await ok(t, run('cp', [smaller, join(bucket, 'file.bin')]), 'with space freed, cp succeeds');
    await ok(t, run('cmp', [smaller, join(bucket, 'file.bin')]), 'and the new version reads back');
  },
);
