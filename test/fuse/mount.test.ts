import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import t from 'tap';
import { fuseError } from '../../src/fuse/errno.js';
import { ExampleMemfs } from '../../src/fuse/example-memfs.js';
import type { FuseFilesystem, RequestContext } from '../../src/fuse/filesystem.js';
import { type FuseMount, MountError, type MountOptions, mount } from '../../src/fuse/mount.js';
import { localDir, ok, run, sh, writeRandom } from '../fixtures/mount.js';

// The example filesystem mounted in this process through our own session,
// driven by real tools. Every tool runs as a child process (run/sh) and the
// test reads and writes the mount only through fs/promises: a synchronous
// call (execSync, readFileSync...) on the mount would block the event loop
// that answers the kernel, and the process would hang in D state for good
// (only aborting the connection in /sys/fs/fuse/connections frees it).

const ROOT_CTX: RequestContext = { unique: 0, uid: 0, gid: 0, pid: 0, interrupted: false };

async function mountMemfs(
  t: Test,
  options: MountOptions = {},
  fs: FuseFilesystem = new ExampleMemfs(),
): Promise<FuseMount & { dir: string }> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'lilio-fuse-')));
  const m = await mount(fs, dir, { fsname: 'memfs-test', subtype: 'memfs', ...options });
  t.teardown(async () => {
    // Lazy: a failed assertion may leave a tool holding the mount busy.
    if (!m.session.isClosed) await m.unmount({ lazy: true }).catch(() => run('umount', ['-l', dir]));
    await rmdir(dir).catch(() => {});
  });
  return Object.assign(m, { dir });
}

const stat = async (fmt: string, path: string) => (await run('stat', ['-c', fmt, path])).stdout.trim();

t.test('cp of 64 MiB in and out, byte for byte, in 1 MiB WRITE requests', async (t) => {
  const m = await mountMemfs(t);
  const local = localDir(t);
  writeRandom(join(local, 'big'), 64 * 1024 * 1024);
  await ok(t, run('cp', [join(local, 'big'), join(m.dir, 'big')]), 'cp in');
  await ok(t, run('cmp', [join(local, 'big'), join(m.dir, 'big')]), 'cmp through the mount');
  await ok(t, run('cp', [join(m.dir, 'big'), join(local, 'back')]), 'cp out');
  await ok(t, run('cmp', [join(local, 'big'), join(local, 'back')]), 'cmp of the copy');
  const writes = m.session.requestCounts().WRITE ?? 0;
  t.ok(writes >= 64 && writes <= 80, `64 MiB took ${writes} WRITE requests (1 MiB each, not 128 KiB)`);
});

t.test('directories: mkdir, ls -l, mv, rm -r', async (t) => {
  const m = await mountMemfs(t);
  await ok(t, sh('mkdir -p "$1/a/b/c" && echo one > "$1/a/b/c/f" && echo two > "$1/a/g"', [m.dir]), 'a tree');
  const ls = await ok(t, run('ls', ['-lR', m.dir]), 'ls -lR');
  t.match(ls.stdout, /-rw-r--r-- 1 root root 4 .* f\n/, 'a file with its mode, owner, size');
  t.match(ls.stdout, /drwxr-xr-x 3 root root .* b\n/, 'a directory with one subdirectory has 3 links');
  await ok(t, run('mv', [join(m.dir, 'a/b'), join(m.dir, 'moved')]), 'mv a directory');
  t.equal(await readFile(join(m.dir, 'moved/c/f'), 'utf8'), 'one\n', 'its contents moved along');
  t.equal(await stat('%h', join(m.dir, 'a')), '2', 'the old parent lost a link');
  await ok(t, run('rm', ['-r', join(m.dir, 'a'), join(m.dir, 'moved')]), 'rm -r');
  t.equal((await run('ls', ['-A', m.dir])).stdout, '', 'empty again');
});

t.test('hard links, symlinks, fifos', async (t) => {
  const m = await mountMemfs(t);
  const [f, g, s, p] = ['f', 'g', 's', 'p'].map((n) => join(m.dir, n)) as [string, string, string, string];
  await writeFile(f, 'shared');
  await ok(t, run('ln', [f, g]), 'ln');
  t.equal(await stat('%h', f), '2', 'link count 2');
  t.equal(await stat('%i', f), await stat('%i', g), 'one inode');
  await ok(t, run('rm', [f]), 'rm one name');
  t.equal(await readFile(g, 'utf8'), 'shared', 'the other keeps the content');
  t.equal(await stat('%h', g), '1');
  await ok(t, run('ln', ['-s', 'g', s]), 'ln -s');
  t.equal((await run('readlink', [s])).stdout, 'g\n', 'readlink');
  t.equal(await readFile(s, 'utf8'), 'shared', 'followed');
  await ok(t, run('mkfifo', [p]), 'mkfifo');
  t.equal(await stat('%F', p), 'fifo');
});

t.test('attributes: touch -a / -m separately, truncate, chmod, xattrs, df', async (t) => {
  const m = await mountMemfs(t);
  const f = join(m.dir, 'f');
  await writeFile(f, 'x');
  await ok(t, run('touch', ['-a', '-d', '2001-02-03 04:05:06.123456789', f]), 'touch -a');
  await ok(t, run('touch', ['-m', '-d', '2011-02-03 04:05:06.5', f]), 'touch -m');
  t.equal(await stat('%x', f), '2001-02-03 04:05:06.123456789 +0000', 'atime to the nanosecond');
  t.equal(await stat('%y', f), '2011-02-03 04:05:06.500000000 +0000', 'mtime set alone');
  t.ok(Number(await stat('%W', f)) > 1_600_000_000, 'birth time, which only STATX carries');
  await ok(t, run('truncate', ['-s', '10000', f]), 'truncate up');
  t.equal(await stat('%s', f), '10000');
  t.same((await readFile(f)).subarray(1, 10000), Buffer.alloc(9999), 'zeros past the old end');
  await ok(t, run('truncate', ['-s', '0', f]), 'truncate to 0');
  t.equal(await stat('%s', f), '0');
  await ok(t, run('chmod', ['600', f]), 'chmod');
  t.equal(await stat('%a', f), '600');
  await ok(t, run('setfattr', ['-n', 'user.color', '-v', 'blue', f]), 'setfattr');
  t.equal((await run('getfattr', ['--only-values', '-n', 'user.color', f])).stdout, 'blue', 'getfattr');
  t.match((await run('getfattr', ['-d', f])).stdout, /user\.color="blue"/, 'listed');
  await ok(t, run('setfattr', ['-x', 'user.color', f]), 'removed');
  t.not((await run('getfattr', ['-n', 'user.color', f])).code, 0, 'gone');
  const df = await ok(t, run('df', ['-P', m.dir]), 'df');
  t.match(df.stdout, /^memfs-test\s/m, 'df shows the fsname');
});

const RENAMEAT2 = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), int(sys.argv[3])) != 0:
    print(os.strerror(ctypes.get_errno())); sys.exit(1)
`;

t.test('renameat2: NOREPLACE refuses, EXCHANGE swaps', async (t) => {
  const m = await mountMemfs(t);
  const [a, b] = [join(m.dir, 'a'), join(m.dir, 'b')];
  await writeFile(a, 'A');
  await writeFile(b, 'B');
  const noreplace = await run('python3', ['-c', RENAMEAT2, a, b, '1']);
  t.not(noreplace.code, 0, 'RENAME_NOREPLACE onto an existing name fails');
  t.match(noreplace.stdout, /File exists/);
  await ok(t, run('python3', ['-c', RENAMEAT2, a, b, '2']), 'RENAME_EXCHANGE');
  t.equal(await readFile(a, 'utf8'), 'B');
  t.equal(await readFile(b, 'utf8'), 'A');
  await ok(t, run('python3', ['-c', RENAMEAT2, a, join(m.dir, 'c'), '1']), 'NOREPLACE onto a free name');
});

t.test('an unlinked open file stays readable, and is freed once closed and forgotten', async (t) => {
  const fs = new ExampleMemfs();
  const m = await mountMemfs(t, {}, fs);
  const f = join(m.dir, 'f');
  await writeFile(f, 'still here');
  const before = fs.inodeCount;
  const script =
    'import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nos.unlink(sys.argv[1])\nprint(os.pread(fd,64,0).decode())';
  const r = await ok(t, run('python3', ['-c', script, f]), 'open, unlink, read');
  t.equal(r.stdout, 'still here\n');
  for (let i = 0; i < 50 && fs.inodeCount >= before; i++) await new Promise((res) => setTimeout(res, 100));
  t.equal(fs.inodeCount, before - 1, 'FORGET reached the filesystem and the inode is gone');
});

t.test('a slow request does not hold up the others', async (t) => {
  const fs = new ExampleMemfs();
  const slowLookup = fs.lookup.bind(fs);
  fs.lookup = async (ctx, parent, name) => {
    if (name === 'slow') await new Promise((res) => setTimeout(res, 3000));
    return slowLookup(ctx, parent, name);
  };
  const m = await mountMemfs(t, {}, fs);
  await writeFile(join(m.dir, 'fast'), 'x');
  const slow = run('stat', [join(m.dir, 'slow')]);
  await new Promise((res) => setTimeout(res, 200));
  const started = Date.now();
  await ok(t, run('stat', [join(m.dir, 'fast')]), 'stat of another file');
  await ok(t, run('ls', [m.dir]), 'ls');
  t.ok(Date.now() - started < 2000, `answered in ${Date.now() - started} ms while the slow lookup waits`);
  t.not((await slow).code, 0, 'the slow one still answers (ENOENT)');
});

t.test('INTERRUPT reaches the request of a process that got a signal', async (t) => {
  const fs = new ExampleMemfs();
  let sawInterrupt = false;
  // OPEN, not READ: page-cache reads go out as background requests that a signal does not interrupt.
  fs.open = async (ctx) => {
    for (let i = 0; i < 500 && !ctx.interrupted; i++) await new Promise((res) => setTimeout(res, 10));
    sawInterrupt = ctx.interrupted;
    throw fuseError('EINTR');
  };
  const m = await mountMemfs(t, {}, fs);
  await writeFile(join(m.dir, 'f'), 'x');
  const started = Date.now();
  const r = await run('timeout', ['-s', 'INT', '0.5', 'cat', join(m.dir, 'f')]);
  t.not(r.code, 0, 'cat was stopped');
  t.ok(sawInterrupt, `the filesystem saw ctx.interrupted and gave up (${Date.now() - started} ms)`);
  t.ok(Date.now() - started < 3000, 'well before its 5 s wait');
});

t.test('notify: the kernel drops cached names and attributes when told', async (t) => {
  const fs = new ExampleMemfs();
  const m = await mountMemfs(t, { entryTimeout: 600, attrTimeout: 600 }, fs);
  const f = join(m.dir, 'f');
  await writeFile(f, 'abc');
  t.equal(await stat('%s', f), '3', 'cached for 10 minutes');
  const entry = await fs.lookup(ROOT_CTX, 1, 'f');
  await fs.setattr(ROOT_CTX, entry.ino, { valid: 8, size: 1 });
  t.equal(await stat('%s', f), '3', 'a change behind the kernel is not seen');
  t.equal(await m.session.notifyInvalInode(entry.ino), true, 'NOTIFY_INVAL_INODE');
  t.equal(await stat('%s', f), '1', 'now it is');
  await fs.unlink(ROOT_CTX, 1, 'f');
  t.equal((await run('stat', [f])).code, 0, 'the name is still cached');
  t.equal(await m.session.notifyInvalEntry(1, 'f'), true, 'NOTIFY_INVAL_ENTRY');
  t.not((await run('stat', [f])).code, 0, 'gone');
  await writeFile(join(m.dir, 'g'), 'x');
  const g = await fs.lookup(ROOT_CTX, 1, 'g');
  await fs.unlink(ROOT_CTX, 1, 'g');
  t.equal(await m.session.notifyDelete(1, g.ino, 'g'), true, 'NOTIFY_DELETE');
  t.not((await run('stat', [join(m.dir, 'g')])).code, 0, 'gone too');
  t.equal(await m.session.notifyInvalEntry(1, 'never-looked-up'), false, 'nothing cached: false, no error');
});

t.test('options: ro shows in /proc/mounts and refuses writes; a non-empty mount point is refused', async (t) => {
  const m = await mountMemfs(t, { readOnly: true });
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[1] === m.dir);
  t.match(line, /^memfs-test \S+ fuse\.memfs ro,/, 'fsname, type fuse.memfs, ro');
  t.match((await sh('echo x > "$1/f"', [m.dir])).stderr, /Read-only file system/);
  const full = realpathSync(mkdtempSync(join(tmpdir(), 'lilio-fuse-full-')));
  t.teardown(() => rmSync(full, { recursive: true, force: true }));
  mkdirSync(join(full, 'something'));
  await t.rejects(mount(new ExampleMemfs(), full), new MountError(''), 'refused');
  await t.rejects(
    mount(new ExampleMemfs(), full),
    /not empty.*nonempty/,
    'with a message that says why and what to do',
  );
});

t.test('a filesystem whose init fails is not left mounted', async (t) => {
  const fs: FuseFilesystem = Object.assign(new ExampleMemfs(), {
    init(): void {
      throw new Error('no backend');
    },
  });
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'lilio-fuse-init-')));
  t.teardown(() => rmdir(dir).catch(() => {}));
  await t.rejects(mount(fs, dir, { log: () => {} }), /during INIT: no backend/);
  t.notOk(
    readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[1] === dir),
    'unmounted',
  );
});

t.test('umount from outside ends the session cleanly', async (t) => {
  const m = await mountMemfs(t);
  await writeFile(join(m.dir, 'f'), 'x');
  let closed = false;
  m.session.once('close', () => {
    closed = true;
  });
  await ok(t, run('umount', [m.dir]), 'umount');
  await m.closed;
  t.ok(closed, "'close' emitted, the promise resolved, nothing thrown");
  t.equal(m.session.fd, -1, 'the device descriptor is closed');
  await m.unmount();
  t.pass('unmount() after the fact is a no-op');
});
