import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { localDir, type MountedLilio, ok, run, sh, startMount, testFuse } from '../fixtures/mount.js';

// Whole trees and metadata: tar, rsync -a + diff -r, stat after chmod/chown/touch across a remount,
// symbolic links, df.

const MiB = 1024 * 1024;
let m: MountedLilio;
let local: string;
let B: string;

/** A tree with nested and empty directories, small and multi-chunk files, and a symlink. */
function makeTree(root: string): void {
  mkdirSync(join(root, 'docs', 'deep', 'er'), { recursive: true });
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'readme.txt'), 'hello tree\n');
  writeFileSync(join(root, 'zero'), '');
  writeFileSync(join(root, 'big.bin'), randomBytes(2 * MiB + 3));
  for (let i = 0; i < 20; i++) writeFileSync(join(root, 'docs', `doc-${i}.txt`), randomBytes(100 + i * 500));
  writeFileSync(join(root, 'docs', 'deep', 'er', 'leaf'), randomBytes(MiB));
  symlinkSync('docs/doc-1.txt', join(root, 'link-to-doc'));
}

t.before(async () => {
  m = await startMount(t);
  local = localDir(t);
  B = join(m.dir, 'trees');
  await ok(t, run('mkdir', [B]), 'mkdir a bucket');
});

t.test('tar c | tar x into the mount and back out, diff -r clean both ways', async (t) => {
  const src = join(local, 'tar-src');
  makeTree(src);
  const into = join(B, 'untarred');
  await ok(t, run('mkdir', [into]), 'mkdir the target');
  await ok(t, sh('tar -C "$1" -cf - . | tar -C "$2" -xf -', [src, into]), 'tar c locally | tar x on the mount');
  await ok(t, run('diff', ['-r', '--no-dereference', src, into]), 'diff -r source vs mount');

  const archive = join(B, 'tree.tar');
  await ok(t, run('tar', ['-C', src, '-cf', archive, '.']), 'tar c with the archive on the mount');
  const out = join(local, 'tar-out');
  mkdirSync(out);
  await ok(t, run('tar', ['-C', out, '-xf', archive]), 'tar x from the archive on the mount');
  await ok(t, run('diff', ['-r', '--no-dereference', src, out]), 'diff -r source vs extracted');
  const list = await ok(t, run('tar', ['-tvf', archive]), 'tar t lists the archive');
  t.match(list.stdout, /link-to-doc -> docs\/doc-1\.txt/, 'the symlink is in the archive');

  const back = join(local, 'tar-back');
  mkdirSync(back);
  await ok(t, sh('tar -C "$1" -cf - . | tar -C "$2" -xf -', [into, back]), 'tar c of the mount | tar x locally');
  await ok(t, run('diff', ['-r', '--no-dereference', src, back]), 'diff -r source vs copy of the mount');
});

t.test('rsync -a, diff -r; a second run sends only the changed file', async (t) => {
  const src = join(local, 'rsync-src');
  makeTree(src);
  const dest = join(B, 'synced');
  await ok(t, run('rsync', ['-a', `${src}/`, `${dest}/`]), 'rsync -a to the mount');
  await ok(t, run('diff', ['-r', '--no-dereference', src, dest]), 'diff -r clean');
  // Sizes, times and modes went through: a dry run finds nothing to do.
  const dry = await ok(t, run('rsync', ['-a', '-i', '--dry-run', `${src}/`, `${dest}/`]), 'rsync dry run');
  t.equal(dry.stdout, '', 'nothing differs (size, mtime, mode, links)');

  writeFileSync(join(src, 'docs', 'doc-7.txt'), 'changed content\n');
  const second = await ok(t, run('rsync', ['-a', '-i', `${src}/`, `${dest}/`]), 'second rsync -a');
  t.same(
    second.stdout
      .trim()
      .split('\n')
      .filter((line) => line.startsWith('>f')),
    [
      second.stdout
        .trim()
        .split('\n')
        .find((line) => line.endsWith('docs/doc-7.txt')),
    ],
    'only the changed file is transferred',
  );
  t.match(second.stdout, /docs\/doc-7\.txt/, 'and it is doc-7');
  await ok(t, run('diff', ['-r', '--no-dereference', src, dest]), 'diff -r clean after the second run');
  t.equal(readFileSync(join(dest, 'docs', 'doc-7.txt'), 'utf8'), 'changed content\n');
});

t.test('ln -s and readlink', async (t) => {
  const dir = join(B, 'links');
  await ok(t, run('mkdir', ['-p', join(dir, 'sub')]), 'mkdir');
  await ok(t, sh('echo target > "$1"', [join(dir, 'sub', 'file')]), 'a file');
  await ok(t, run('ln', ['-s', 'sub/file', join(dir, 'rel')]), 'ln -s relative');
  await ok(t, run('ln', ['-s', join(dir, 'sub'), join(dir, 'abs')]), 'ln -s absolute, to a directory');
  await ok(t, run('ln', ['-s', 'nowhere', join(dir, 'dangling')]), 'ln -s dangling');
  t.equal((await ok(t, run('readlink', [join(dir, 'rel')]), 'readlink')).stdout, 'sub/file\n');
  t.equal(readlinkSync(join(dir, 'abs')), join(dir, 'sub'));
  t.equal(readlinkSync(join(dir, 'dangling')), 'nowhere');
  t.equal((await ok(t, run('cat', [join(dir, 'rel')]), 'cat through the link')).stdout, 'target\n');
  t.equal((await ok(t, run('cat', [join(dir, 'abs', 'file')]), 'through a directory link')).stdout, 'target\n');
  const dangling = await run('cat', [join(dir, 'dangling')]);
  t.not(dangling.code, 0, 'a dangling link cannot be read');
  t.match(dangling.stderr, /No such file/);
  const stat = await ok(t, run('stat', ['-c', '%F', join(dir, 'rel')]), 'stat the link itself');
  t.equal(stat.stdout, 'symbolic link\n');
  const existing = await run('ln', ['-s', 'x', join(dir, 'rel')]);
  t.not(existing.code, 0, 'ln -s onto an existing name fails');
  t.match(existing.stderr, /File exists/);
});

t.test('df shows the capacity', async (t) => {
  const df = await ok(t, run('df', ['-B1', '--output=fstype,size,avail', m.dir]), 'df');
  const [fstype, size, avail] = df.stdout.trim().split('\n')[1]!.trim().split(/\s+/);
  t.equal(fstype, 'fuse.lilio', 'our filesystem');
  t.ok(Number(size) > 0, `a size (${size})`);
  t.ok(Number(avail) > 0 && Number(avail) <= Number(size), `free space within it (${avail})`);
  const human = await ok(t, run('df', ['-h', m.dir]), 'df -h');
  t.match(human.stdout, /^lilio\s+\d/m, 'df -h lists it');
});

t.test('stat shows chmod, chown and touch -d times, also after a remount', async (t) => {
  const dir = join(B, 'attrs');
  await ok(t, run('mkdir', [dir]), 'mkdir');
  const file = join(dir, 'file');
  const big = join(dir, 'big');
  await ok(t, sh('echo data > "$1"', [file]), 'a small file');
  writeFileSync(join(local, 'attrs-big'), randomBytes(2 * MiB));
  await ok(t, run('cp', [join(local, 'attrs-big'), big]), 'a multi-chunk file');
  const sub = join(dir, 'sub');
  await ok(t, run('mkdir', [sub]), 'a directory');

  await ok(t, run('chmod', ['0640', file]), 'chmod 640');
  await ok(t, run('chown', ['1234:5678', file]), 'chown');
  await ok(t, run('touch', ['-d', '2001-02-03T04:05:06Z', file]), 'touch -d');
  await ok(t, run('chmod', ['0604', big]), 'chmod the big file');
  await ok(t, run('touch', ['-d', '1999-12-31T23:59:59Z', big]), 'touch -d the big file');
  await ok(t, run('chmod', ['0711', sub]), 'chmod a directory');
  await ok(t, run('chown', ['42:43', sub]), 'chown a directory');
  await ok(t, run('touch', ['-d', '2010-10-10T10:10:10Z', sub]), 'touch -d a directory');

  const format = '%a %u %g %X %Y %s';
  const wanted = {
    [file]: `640 1234 5678 ${Date.UTC(2001, 1, 3, 4, 5, 6) / 1000} ${Date.UTC(2001, 1, 3, 4, 5, 6) / 1000} 5`,
    [big]: `604 0 0 ${Date.UTC(1999, 11, 31, 23, 59, 59) / 1000} ${Date.UTC(1999, 11, 31, 23, 59, 59) / 1000} ${2 * MiB}`,
    [sub]: `711 42 43 ${Date.UTC(2010, 9, 10, 10, 10, 10) / 1000} ${Date.UTC(2010, 9, 10, 10, 10, 10) / 1000}`,
  };
  const check = async (root: string, when: string) => {
    for (const [path, expected] of Object.entries(wanted)) {
      const there = path.replace(m.dir, root);
      const stat = await ok(t, run('stat', ['-c', format, there]), `stat ${when}`);
      t.equal(stat.stdout.trim().replace(/ 4096$/, ''), expected, `${there} ${when}`);
    }
  };
  await check(m.dir, 'on the same mount');
  await m.stop();
  const again = await m.remount();
  await check(again.dir, 'after a remount');
  await ok(t, run('cmp', [join(local, 'attrs-big'), big.replace(m.dir, again.dir)]), 'content intact');
  const link = await ok(t, run('readlink', [join(again.dir, 'trees', 'links', 'rel')]), 'a symlink after remount');
  t.equal(link.stdout, 'sub/file\n');
});

// A known failure below us, kept running and visible as a todo assertion.
t.test('touch -m changes mtime and keeps atime', async (t) => {
  const file = join(B, 'one-sided');
  await ok(t, sh('echo x > "$1"', [file]), 'a file');
  await ok(t, run('touch', ['-d', '2001-01-01T00:00:00Z', file]), 'touch -d');
  await ok(t, run('touch', ['-m', '-d', '2005-05-05T05:05:05Z', file]), 'touch -m -d');
  const stat = await ok(t, run('stat', ['-c', '%X %Y', file]), 'stat');
  t.equal(stat.stdout.trim(), `${Date.UTC(2001, 0, 1) / 1000} ${Date.UTC(2005, 4, 5, 5, 5, 5) / 1000}`, 'times', {
    todo:
      testFuse === 'libfuse' &&
      'libfuse 2.9.9 (bundled by fuse-native) drops a setattr that sets only one of atime/mtime: utimens is never called',
  });
});

t.test('utimes with distinct atime and mtime keeps both', async (t) => {
  const file = join(B, 'distinct-times');
  await ok(t, sh('echo x > "$1"', [file]), 'a file');
  await utimes(file, new Date('2001-01-01T00:00:00Z'), new Date('2005-05-05T05:05:05Z'));
  const stat = await ok(t, run('stat', ['-c', '%X %Y', file]), 'stat');
  // fuse-native 2.2.6 hands atime to utimens as both times unless scripts/patch-fuse-native ran.
  t.equal(stat.stdout.trim(), `${Date.UTC(2001, 0, 1) / 1000} ${Date.UTC(2005, 4, 5, 5, 5, 5) / 1000}`, 'times');
});
