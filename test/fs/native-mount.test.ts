import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isMounted, localDir, type MountedLilio, ok, run, sh, startMount, writeRandom } from '../fixtures/mount.js';

// `lilio mount --fuse native`: the same Vfs served by our own FUSE session (src/fuse) instead of
// fuse-native, driven with the everyday tools. Real mounts as root; the fixture unmounts in teardown.

const MiB = 1024 * 1024;
let m: MountedLilio;
let B: string;

t.before(async () => {
  m = await startMount(t, { args: ['--fuse', 'native'] });
  B = join(m.dir, 'native');
  await ok(t, run('mkdir', [B]), 'mkdir a bucket');
});

t.test('the mount is our own session: fuse.lilio with 1 MiB reads', async (t) => {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[1] === m.dir);
  t.match(line, /^lilio \S+ fuse\.lilio rw,.*max_read=1048576/);
});

t.test('cp and cmp of a 64 MiB file', async (t) => {
  const local = join(localDir(t), 'src');
  writeRandom(local, 64 * MiB);
  await ok(t, run('cp', [local, join(B, 'big')]), 'cp in');
  await ok(t, run('cmp', [local, join(B, 'big')]), 'cmp');
  t.equal(statSync(join(B, 'big')).size, 64 * MiB);
  await ok(t, run('rm', [join(B, 'big')]), 'rm');
});

t.test('mkdir -p, ls -l, mv of a tree, rm -r', async (t) => {
  await ok(t, run('mkdir', ['-p', join(B, 'a/b/c')]), 'mkdir -p');
  writeFileSync(join(B, 'a/b/c/f'), 'hello');
  const ls = await ok(t, run('ls', ['-l', join(B, 'a/b/c')]), 'ls -l');
  t.match(ls.stdout, /-rw-r--r-- 1 \S+ \S+ 5 .* f\n/);
  await ok(t, run('mv', [join(B, 'a'), join(B, 'moved')]), 'mv a directory');
  t.equal(readFileSync(join(B, 'moved/b/c/f'), 'utf8'), 'hello', 'read through the new path');
  t.throws(() => statSync(join(B, 'a')), { code: 'ENOENT' }, 'the old path is gone');
  await ok(t, run('rm', ['-r', join(B, 'moved')]), 'rm -r');
  t.same((await run('ls', ['-A', B])).stdout, '', 'the bucket is empty');
});

t.test('ln -s and readlink', async (t) => {
  writeFileSync(join(B, 'target'), 'through the link');
  await ok(t, run('ln', ['-s', 'target', join(B, 'link')]), 'ln -s');
  t.equal((await run('readlink', [join(B, 'link')])).stdout, 'target\n');
  t.equal(readFileSync(join(B, 'link'), 'utf8'), 'through the link');
});

t.test('chmod, touch -m and touch -a each change only their own field', async (t) => {
  const f = join(B, 'times');
  writeFileSync(f, 'x');
  await ok(t, run('chmod', ['640', f]), 'chmod');
  t.equal((await run('stat', ['-c', '%a', f])).stdout, '640\n');
  // Without default_permissions the kernel asks us (ACCESS): even root executes only with an x bit.
  t.equal((await sh('test -r "$1" && echo r; test -x "$1" || echo no-x', [f])).stdout, 'r\nno-x\n', 'access(2)');
  const atimeBefore = (await run('stat', ['-c', '%X', f])).stdout;
  await ok(t, run('touch', ['-m', '-d', '2020-01-02 03:04:05', f]), 'touch -m');
  t.equal((await run('stat', ['-c', '%Y', f])).stdout.trim(), String(Date.UTC(2020, 0, 2, 3, 4, 5) / 1000));
  t.equal((await run('stat', ['-c', '%X', f])).stdout, atimeBefore, 'atime untouched by touch -m');
  await ok(t, run('touch', ['-a', '-d', '2021-05-06 07:08:09', f]), 'touch -a');
  t.equal((await run('stat', ['-c', '%X', f])).stdout.trim(), String(Date.UTC(2021, 4, 6, 7, 8, 9) / 1000));
  t.equal(
    (await run('stat', ['-c', '%Y', f])).stdout.trim(),
    String(Date.UTC(2020, 0, 2, 3, 4, 5) / 1000),
    'mtime untouched by touch -a',
  );
  const before = Date.now() / 1000;
  await ok(t, run('touch', [f]), 'touch (UTIME_NOW)');
  t.ok(Number((await run('stat', ['-c', '%Y', f])).stdout) >= Math.floor(before) - 1, 'mtime is now');
});

t.test('truncate -s 1P is quick or EFBIG; truncate -s 10G stores nothing', async (t) => {
  const started = performance.now();
  const huge = await run('truncate', ['-s', '1P', join(B, 'huge')]);
  t.ok(huge.code === 0 || /File too large/.test(huge.stderr), 'success or EFBIG', { stderr: huge.stderr });
  t.ok(performance.now() - started < 2000, 'quick');
  await ok(t, run('truncate', ['-s', '10G', join(B, 'ten')]), 'truncate -s 10G');
  t.equal(statSync(join(B, 'ten')).size, 10 * 1024 * MiB);
  t.equal((await run('du', ['-k', join(B, 'ten')])).stdout.split('\t')[0], '0', 'du: nothing stored');
  await ok(t, run('rm', ['-f', join(B, 'ten'), join(B, 'huge')]), 'rm');
});

t.test('fallocate -p punches a hole: same bytes as a local copy punched alike, du shrinks', async (t) => {
  const local = join(localDir(t), 'punch');
  writeRandom(local, 8 * MiB);
  const f = join(B, 'punch');
  await ok(t, run('cp', [local, f]), 'cp');
  const duBefore = Number((await run('du', ['-k', f])).stdout.split('\t')[0]);
  for (const path of [f, local]) await ok(t, run('fallocate', ['-p', '-o', '1M', '-l', '4M', path]), 'fallocate -p');
  await ok(t, run('cmp', [local, f]), 'cmp with the local copy');
  const duAfter = Number((await run('du', ['-k', f])).stdout.split('\t')[0]);
  t.ok(duAfter <= duBefore - 4096, `du ${duBefore} -> ${duAfter} KiB`);
  const seek = await ok(
    t,
    run('python3', [
      '-c',
      'import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nprint(os.lseek(fd,0,os.SEEK_HOLE),os.lseek(fd,1048576,os.SEEK_DATA))',
      f,
    ]),
    'python3 os.lseek SEEK_HOLE / SEEK_DATA',
  );
  t.equal(seek.stdout.trim(), `${MiB} ${5 * MiB}`, 'the hole is where it was punched');
});

t.test('setfattr and getfattr', async (t) => {
  const f = join(B, 'xattr');
  writeFileSync(f, 'x');
  await ok(t, run('setfattr', ['-n', 'user.colour', '-v', 'blue', f]), 'setfattr');
  const got = await ok(t, run('getfattr', ['--only-values', '-n', 'user.colour', f]), 'getfattr');
  t.equal(got.stdout, 'blue');
  const dump = await ok(t, run('getfattr', ['-d', f]), 'getfattr -d');
  t.match(dump.stdout, /user\.colour="blue"/);
});

t.test('rename over an existing file replaces it', async (t) => {
  writeFileSync(join(B, 'old'), 'old content');
  writeFileSync(join(B, 'new'), 'new content');
  await ok(t, run('mv', [join(B, 'new'), join(B, 'old')]), 'mv over');
  t.equal(readFileSync(join(B, 'old'), 'utf8'), 'new content');
  t.throws(() => statSync(join(B, 'new')), { code: 'ENOENT' });
  writeFileSync(join(B, 'other'), 'other content');
  // renameat2 through ctypes: prints the errno (0 on success).
  const renameat2 = (flags: number) =>
    run('python3', [
      '-c',
      'import ctypes,sys\nlibc=ctypes.CDLL(None,use_errno=True)\n' +
        'r=libc.renameat2(-100,sys.argv[1].encode(),-100,sys.argv[2].encode(),int(sys.argv[3]))\n' +
        'print(0 if r==0 else ctypes.get_errno())',
      join(B, 'other'),
      join(B, 'old'),
      String(flags),
    ]);
  t.equal((await renameat2(1)).stdout.trim(), '17', 'RENAME_NOREPLACE over an existing file: EEXIST');
  t.equal(readFileSync(join(B, 'old'), 'utf8'), 'new content', 'the target is untouched');
  t.equal((await renameat2(2)).stdout.trim(), '0', 'RENAME_EXCHANGE');
  t.equal(readFileSync(join(B, 'old'), 'utf8'), 'other content', 'the names swapped their contents');
  t.equal(readFileSync(join(B, 'other'), 'utf8'), 'new content');
});

t.test('lilio umount exits 0 and the file is there after a remount', async (t) => {
  writeFileSync(join(B, 'kept'), 'still here');
  const umount = await m.cli(['umount', m.dir]);
  t.equal(umount.code, 0, 'lilio umount', { stderr: umount.stderr });
  const exit = await m.exited;
  t.equal(exit.code, 0, 'the mount process exits 0');
  t.notOk(isMounted(m.dir), 'unmounted');
  m = await m.remount();
  t.equal(readFileSync(join(B, 'kept'), 'utf8'), 'still here');
});

t.test('umount from outside: the process notices (ENODEV) and exits 0', async (t) => {
  const outside = await run('umount', [m.dir]);
  t.equal(outside.code, 0, 'umount', { stderr: outside.stderr });
  const exit = await m.exited;
  t.equal(exit.code, 0, 'exits 0');
  t.notMatch(m.stderr(), /Unhandled|TypeError|at .*\.js:\d+/, 'no stack trace');
});
