import {
  appendFile,
  chmod,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rmdir,
  stat,
  symlink,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type MountedLilio, startMount } from '../fixtures/mount.js';

// Every failure a tool can meet reaches it as the right errno (node:fs/promises against the mount).

let m: MountedLilio;
let B: string;

async function expectCode(t: Test, what: string, code: string, attempt: () => Promise<unknown>): Promise<void> {
  try {
    await attempt();
    t.fail(`${what}: succeeded, expected ${code}`);
  } catch (err) {
    t.equal((err as NodeJS.ErrnoException).code, code, `${what}: ${code}`, { error: String(err) });
  }
}

t.before(async () => {
  m = await startMount(t);
  B = join(m.dir, 'errs');
  await mkdir(B);
  await mkdir(join(B, 'dir'));
  await writeFile(join(B, 'dir', 'inside.txt'), 'x');
  await writeFile(join(B, 'file.txt'), 'hello');
  await mkdir(join(m.dir, 'full-bucket'));
  await writeFile(join(m.dir, 'full-bucket', 'x'), 'x');
});

t.test('ENOENT', async (t) => {
  await expectCode(t, 'read a missing file', 'ENOENT', () => readFile(join(B, 'missing')));
  await expectCode(t, 'stat a missing file', 'ENOENT', () => stat(join(B, 'missing')));
  await expectCode(t, 'stat in a missing directory', 'ENOENT', () => stat(join(B, 'nodir', 'x')));
  await expectCode(t, 'create in a missing directory', 'ENOENT', () => writeFile(join(B, 'nodir', 'x'), 'x'));
  await expectCode(t, 'a missing bucket', 'ENOENT', () => readdir(join(m.dir, 'no-such-bucket')));
  await expectCode(t, 'create in a missing bucket', 'ENOENT', () => writeFile(join(m.dir, 'no-such-bucket', 'x'), ''));
  await expectCode(t, 'unlink a missing file', 'ENOENT', () => unlink(join(B, 'missing')));
  await expectCode(t, 'rmdir a missing directory', 'ENOENT', () => rmdir(join(B, 'missing')));
  await expectCode(t, 'rename a missing file', 'ENOENT', () => rename(join(B, 'missing'), join(B, 'other')));
  await expectCode(t, 'open without O_CREAT', 'ENOENT', () => open(join(B, 'missing'), 'r+'));
});

t.test('EEXIST', async (t) => {
  await expectCode(t, 'mkdir an existing directory', 'EEXIST', () => mkdir(join(B, 'dir')));
  await expectCode(t, 'mkdir over an existing file', 'EEXIST', () => mkdir(join(B, 'file.txt')));
  await expectCode(t, 'mkdir an existing bucket', 'EEXIST', () => mkdir(B));
  await expectCode(t, 'open O_CREAT|O_EXCL an existing file', 'EEXIST', () => open(join(B, 'file.txt'), 'wx'));
  await expectCode(t, 'open O_CREAT|O_EXCL a directory', 'EEXIST', () => open(join(B, 'dir'), 'wx'));
  await expectCode(t, 'symlink over an existing file', 'EEXIST', () => symlink('x', join(B, 'file.txt')));
  t.equal(await readFile(join(B, 'file.txt'), 'utf8'), 'hello', 'the existing file is untouched');
});

t.test('ENOTEMPTY', async (t) => {
  await expectCode(t, 'rmdir a directory with a file', 'ENOTEMPTY', () => rmdir(join(B, 'dir')));
  await expectCode(t, 'rmdir a bucket with objects', 'ENOTEMPTY', () => rmdir(join(m.dir, 'full-bucket')));
  await mkdir(join(B, 'target'));
  await writeFile(join(B, 'target', 'x'), 'x');
  await mkdir(join(B, 'source'));
  await expectCode(t, 'rename a directory onto a non-empty one', 'ENOTEMPTY', () =>
    rename(join(B, 'source'), join(B, 'target')),
  );
  t.same(await readdir(join(B, 'dir')), ['inside.txt'], 'nothing was removed');
});

t.test('EISDIR', async (t) => {
  await expectCode(t, 'read a directory', 'EISDIR', () => readFile(join(B, 'dir')));
  await expectCode(t, 'open a directory for writing', 'EISDIR', () => open(join(B, 'dir'), 'w'));
  await expectCode(t, 'open a bucket for writing', 'EISDIR', () => open(B, 'r+'));
  await expectCode(t, 'unlink a directory', 'EISDIR', () => unlink(join(B, 'dir')));
  await expectCode(t, 'rename a file onto a directory', 'EISDIR', () => rename(join(B, 'file.txt'), join(B, 'dir')));
});

t.test('ENOTDIR', async (t) => {
  await expectCode(t, 'readdir a file', 'ENOTDIR', () => readdir(join(B, 'file.txt')));
  await expectCode(t, 'rmdir a file', 'ENOTDIR', () => rmdir(join(B, 'file.txt')));
  await expectCode(t, 'a path through a file', 'ENOTDIR', () => stat(join(B, 'file.txt', 'x')));
  await expectCode(t, 'mkdir below a file', 'ENOTDIR', () => mkdir(join(B, 'file.txt', 'sub')));
  await expectCode(t, 'create below a file', 'ENOTDIR', () => writeFile(join(B, 'file.txt', 'x'), 'x'));
  await expectCode(t, 'rename a directory onto a file', 'ENOTDIR', () => rename(join(B, 'dir'), join(B, 'file.txt')));
});

t.test('EPERM', async (t) => {
  await expectCode(t, 'create a file at the root', 'EPERM', () => writeFile(join(m.dir, 'loose.txt'), 'x'));
  await expectCode(t, 'a symlink at the root', 'EPERM', () => symlink('errs', join(m.dir, 'link')));
  await expectCode(t, 'a hard link', 'EPERM', () => link(join(B, 'file.txt'), join(B, 'hard')));
  await expectCode(t, 'rename a bucket', 'EPERM', () => rename(B, join(m.dir, 'renamed-bucket')));
  await expectCode(t, 'move a file to the root', 'EPERM', () => rename(join(B, 'file.txt'), join(m.dir, 'file.txt')));
  t.equal(await readFile(join(B, 'file.txt'), 'utf8'), 'hello', 'the file stayed');
});

t.test('EINVAL', async (t) => {
  await expectCode(t, 'mkdir a bucket named Bad_Name', 'EINVAL', () => mkdir(join(m.dir, 'Bad_Name')));
  await expectCode(t, 'mkdir a bucket with a two-letter name', 'EINVAL', () => mkdir(join(m.dir, 'ab')));
  await expectCode(t, 'mkdir a reserved bucket name', 'EINVAL', () => mkdir(join(m.dir, 'metrics')));
  await expectCode(t, 'move a directory into itself', 'EINVAL', () => rename(join(B, 'dir'), join(B, 'dir', 'sub')));
  await expectCode(t, 'readlink a regular file', 'EINVAL', () => readlink(join(B, 'file.txt')));
  t.notOk((await readdir(m.dir)).includes('Bad_Name'), 'no bucket was created');
});

t.test('ENAMETOOLONG', async (t) => {
  const long = 'n'.repeat(300);
  await expectCode(t, 'create a 300-byte name', 'ENAMETOOLONG', () => writeFile(join(B, long), 'x'));
  await expectCode(t, 'mkdir a 300-byte name', 'ENAMETOOLONG', () => mkdir(join(B, long)));
  await expectCode(t, 'stat a 300-byte name', 'ENAMETOOLONG', () => stat(join(B, long)));
  await expectCode(t, 'rename to a 300-byte name', 'ENAMETOOLONG', () => rename(join(B, 'file.txt'), join(B, long)));
  await expectCode(t, 'mkdir a bucket with a 300-byte name', 'ENAMETOOLONG', () => mkdir(join(m.dir, long)));
  await expectCode(t, 'stat a 300-byte name at the root', 'ENAMETOOLONG', () => stat(join(m.dir, long)));
  const fine = 'n'.repeat(255);
  await writeFile(join(B, fine), 'ok');
  t.equal(await readFile(join(B, fine), 'utf8'), 'ok', 'a 255-byte name is fine');
});

t.test('EROFS on a --read-only mount of the same store; reads still work', async (t) => {
  await m.stop();
  const ro = await startMount(t, { home: m.home, args: ['--read-only'] });
  const R = join(ro.dir, 'errs');
  t.equal(await readFile(join(R, 'file.txt'), 'utf8'), 'hello', 'a file reads');
  t.same((await readdir(R)).sort(), (await readdir(R)).sort(), 'a directory lists');
  await expectCode(t, 'create', 'EROFS', () => writeFile(join(R, 'new.txt'), 'x'));
  await expectCode(t, 'overwrite', 'EROFS', () => writeFile(join(R, 'file.txt'), 'x'));
  await expectCode(t, 'append', 'EROFS', () => appendFile(join(R, 'file.txt'), 'x'));
  await expectCode(t, 'truncate', 'EROFS', () => truncate(join(R, 'file.txt'), 1));
  await expectCode(t, 'mkdir', 'EROFS', () => mkdir(join(R, 'newdir')));
  await expectCode(t, 'mkdir a bucket', 'EROFS', () => mkdir(join(ro.dir, 'new-bucket')));
  await expectCode(t, 'unlink', 'EROFS', () => unlink(join(R, 'file.txt')));
  await expectCode(t, 'rmdir', 'EROFS', () => rmdir(join(R, 'source')));
  await expectCode(t, 'rename', 'EROFS', () => rename(join(R, 'file.txt'), join(R, 'moved.txt')));
  await expectCode(t, 'chmod', 'EROFS', () => chmod(join(R, 'file.txt'), 0o600));
  await expectCode(t, 'symlink', 'EROFS', () => symlink('x', join(R, 'link')));
  t.equal(await readFile(join(R, 'file.txt'), 'utf8'), 'hello', 'nothing changed');
});
