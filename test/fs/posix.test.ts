import { constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import t, { type Test } from 'tap';
import { DirTimes, PERSIST_INTERVAL_MS } from '../../src/fs/dir-times.js';
import { toErrno } from '../../src/fs/errno.js';
import { accessAllowed, chownProblem, newOwner } from '../../src/fs/ownership.js';
import { Vfs } from '../../src/fs/vfs.js';
import { testEngine } from '../fixtures/engine.js';

// POSIX semantics of the Vfs without FUSE: owners from the caller, metadata-only nodes, ctime,
// directory times, RENAME_NOREPLACE. The real-mount side is in posix-mount.test.ts.

const { S_IFMT, S_IFREG, S_IFDIR, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, O_RDONLY, O_RDWR } = constants;
const S_ISGID = 0o2000;
const alice = { uid: 1001, gid: 1001 };
const bob = { uid: 1002, gid: 1002 };

async function setup(t: Test) {
  const engine = await testEngine();
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('bkt');
  const vfs = new Vfs(engine.lilio, { readOnly: false, maxDirtyBuffers: 4, sealsInFlight: 2 });
  return { ...engine, vfs };
}

/** The errno a Vfs call failed with (undefined when it succeeded). */
async function errnoOf(call: Promise<unknown>): Promise<number | undefined> {
  try {
    await call;
  } catch (err) {
    return toErrno(err);
  }
  return undefined;
}

/** Lets the clock move so that a changed time is visibly later. */
const tick = () => new Promise((r) => setTimeout(r, 5));

async function createFile(vfs: Vfs, path: string, content = '', caller = alice): Promise<void> {
  const fd = await vfs.create(path, 0o644, caller);
  if (content) await vfs.write(fd, Buffer.from(content), content.length, 0);
  await vfs.release(fd);
}

t.test('what a caller creates is theirs; a setgid directory gives its group', async (t) => {
  const { vfs } = await setup(t);
  await createFile(vfs, '/bkt/a');
  await vfs.mkdir('/bkt/d', 0o755, alice);
  await vfs.symlink('a', '/bkt/l', bob);
  for (const [path, who] of [
    ['/bkt/a', alice],
    ['/bkt/d', alice],
    ['/bkt/l', bob],
  ] as const) {
    const s = await vfs.getattr(path);
    t.same([s.uid, s.gid], [who.uid, who.gid], `${path} belongs to its creator`);
  }
  await vfs.chmod('/bkt/d', 0o2775);
  await createFile(vfs, '/bkt/d/f', '', bob);
  await vfs.mkdir('/bkt/d/sub', 0o755, bob);
  const f = await vfs.getattr('/bkt/d/f');
  t.same([f.uid, f.gid], [bob.uid, alice.gid], 'a file in a setgid directory takes its group');
  t.equal(f.mode & S_ISGID, 0, 'a file does not inherit the setgid bit');
  const sub = await vfs.getattr('/bkt/d/sub');
  t.same([sub.uid, sub.gid], [bob.uid, alice.gid], 'so does a subdirectory');
  t.equal(sub.mode & S_ISGID, S_ISGID, 'which keeps the setgid bit');
  await vfs.chown('/bkt/a', bob.uid, -1);
  t.same([(await vfs.getattr('/bkt/a')).uid, (await vfs.getattr('/bkt/a')).gid], [bob.uid, alice.gid], 'chown stored');
});

t.test('chown and access rules as the kernel applies them', async (t) => {
  const file = { mode: 0o640, uid: alice.uid, gid: alice.gid, atimeMs: 0, mtimeMs: 0, ctimeMs: 0 };
  t.equal(chownProblem({ uid: 0, gid: 0 }, file, bob.uid, bob.gid), undefined, 'root gives files away');
  t.match(chownProblem(alice, file, bob.uid, -1), /only root/, 'the owner cannot');
  t.equal(chownProblem(alice, file, alice.uid, -1), undefined, 'chown to oneself changes nothing');
  t.equal(chownProblem(alice, { ...file, gid: 0 }, -1, alice.gid), undefined, 'the owner takes its own group');
  t.match(chownProblem(alice, file, -1, 0), /not in group/);
  t.match(chownProblem(bob, file, -1, bob.gid), /only the owner/);

  const reg = S_IFREG | 0o640;
  t.ok(accessAllowed(alice, reg, alice.uid, alice.gid, 6), 'owner reads and writes');
  t.notOk(accessAllowed(alice, reg, alice.uid, alice.gid, 1), 'nobody executes without x');
  t.ok(accessAllowed({ uid: 7, gid: alice.gid }, reg, alice.uid, alice.gid, 4), 'group reads');
  t.notOk(accessAllowed({ uid: 7, gid: alice.gid }, reg, alice.uid, alice.gid, 2), 'group does not write');
  t.notOk(accessAllowed(bob, reg, alice.uid, alice.gid, 4), 'others do not read');
  t.ok(accessAllowed(bob, reg, alice.uid, alice.gid, 0), 'F_OK');
  t.ok(accessAllowed({ uid: 0, gid: 0 }, reg, alice.uid, alice.gid, 6), 'root reads and writes anything');
  t.notOk(accessAllowed({ uid: 0, gid: 0 }, reg, alice.uid, alice.gid, 1), 'root executes only with an x bit');
  t.ok(accessAllowed({ uid: 0, gid: 0 }, S_IFDIR | 0o700, alice.uid, alice.gid, 1), 'root searches any directory');

  t.same(newOwner(bob, { ...file, mode: 0o2775 }, 0o755, true), { uid: bob.uid, gid: alice.gid, mode: 0o2755 });
  t.same(newOwner(bob, file, 0o644, false), { ...bob, mode: 0o644 });
});

t.test('mkfifo, mknod and sockets: metadata-only nodes with their type and device number', async (t) => {
  const { vfs, lilio } = await setup(t);
  await vfs.mknod('/bkt/fifo', 'fifo', 0o640, 0, alice);
  await vfs.mknod('/bkt/sock', 'socket', 0o755, 0, alice);
  await vfs.mknod('/bkt/null', 'chardev', 0o666, 0x103, alice);
  await vfs.mknod('/bkt/disk', 'blockdev', 0o660, 0x800, alice);
  const expected = [
    ['fifo', S_IFIFO, 0o640, undefined],
    ['sock', S_IFSOCK, 0o755, undefined],
    ['null', S_IFCHR, 0o666, 0x103],
    ['disk', S_IFBLK, 0o660, 0x800],
  ] as const;
  const check = async (vfs: Vfs, what: string) => {
    for (const [name, type, mode, rdev] of expected) {
      const s = await vfs.getattr(`/bkt/${name}`);
      t.equal(s.mode & S_IFMT, type, `${what}: ${name} has its type`);
      t.equal(s.mode & 0o7777, mode, `${what}: ${name} has its mode`);
      t.equal(s.rdev, rdev, `${what}: ${name} has its device number`);
      t.equal(s.size, 0);
      t.equal(s.uid, alice.uid);
    }
  };
  await check(vfs, 'looked up');
  // A fresh Vfs stats them from a listing, not a lookup each.
  const listed = new Vfs(lilio, { readOnly: false, maxDirtyBuffers: 4, sealsInFlight: 2 });
  t.same((await listed.readdir('/bkt')).sort(), ['.', '..', 'disk', 'fifo', 'null', 'sock']);
  await check(listed, 'listed');
  t.equal((await lilio.headObject('bkt', 'fifo')).kind, 'fifo', 'the store keeps the kind');

  t.equal(await errnoOf(vfs.mknod('/bkt/fifo', 'fifo', 0o644, 0)), -osConstants.errno.EEXIST, 'EEXIST');
  t.equal(await errnoOf(vfs.open('/bkt/fifo', O_RDONLY)), -osConstants.errno.ENXIO, 'no data to open here');
  await vfs.rename('/bkt/fifo', '/bkt/fifo2');
  t.equal((await vfs.getattr('/bkt/fifo2')).mode & S_IFMT, S_IFIFO, 'a renamed fifo stays a fifo');
  await vfs.chmod('/bkt/fifo2', 0o600);
  t.equal((await vfs.getattr('/bkt/fifo2')).mode, S_IFIFO | 0o600, 'chmod keeps the type');
  await vfs.unlink('/bkt/fifo2');
  await t.rejects(vfs.getattr('/bkt/fifo2'), { code: 'NOT_FOUND' });
});

t.test(
  'ctime moves with chmod, chown, rename, truncate, write and xattrs; utimens sets what it is given',
  async (t) => {
    const { vfs } = await setup(t);
    await createFile(vfs, '/bkt/f', 'hello');
    const changes: [string, () => Promise<unknown>][] = [
      ['chmod', () => vfs.chmod('/bkt/f', 0o600)],
      ['chown', () => vfs.chown('/bkt/f', bob.uid, bob.gid)],
      ['rename', () => vfs.rename('/bkt/f', '/bkt/g')],
      ['truncate', () => vfs.truncate('/bkt/g', 2)],
      [
        'write',
        async () => {
          const fd = await vfs.open('/bkt/g', O_RDWR);
          await vfs.write(fd, Buffer.from('xy'), 2, 0);
          await vfs.release(fd);
        },
      ],
      ['setxattr', () => vfs.setxattr('/bkt/g', 'user.a', Buffer.from('1'))],
      ['removexattr', () => vfs.removexattr('/bkt/g', 'user.a')],
    ];
    let path = '/bkt/f';
    for (const [name, change] of changes) {
      const before = await vfs.getattr(path);
      await tick();
      await change();
      if (name === 'rename') path = '/bkt/g';
      const after = await vfs.getattr(path);
      t.ok(after.ctime > before.ctime, `${name} moves ctime`);
      if (name === 'rename' || name.startsWith('ch') || name.endsWith('xattr')) {
        t.equal(after.mtime, before.mtime, `${name} leaves mtime`);
      }
    }
    await vfs.utimens('/bkt/g', 1_000, 2_000);
    const s = await vfs.getattr('/bkt/g');
    t.same([s.atime, s.mtime], [1_000, 2_000], 'utimens sets both times exactly');
  },
);

t.test("a directory's mtime and ctime move when entries come and go", async (t) => {
  const { vfs } = await setup(t);
  await vfs.mkdir('/bkt/a', 0o755, alice);
  await vfs.mkdir('/bkt/b', 0o755, alice);
  const steps: [string, string[], () => Promise<unknown>][] = [
    ['create', ['/bkt/a'], () => createFile(vfs, '/bkt/a/f')],
    ['mkdir', ['/bkt/a'], () => vfs.mkdir('/bkt/a/sub', 0o755)],
    ['symlink', ['/bkt/a'], () => vfs.symlink('f', '/bkt/a/l')],
    ['mknod', ['/bkt/a'], () => vfs.mknod('/bkt/a/p', 'fifo', 0o644, 0)],
    ['rename across', ['/bkt/a', '/bkt/b'], () => vfs.rename('/bkt/a/f', '/bkt/b/f')],
    ['unlink', ['/bkt/b'], () => vfs.unlink('/bkt/b/f')],
    ['rmdir', ['/bkt/a'], () => vfs.rmdir('/bkt/a/sub')],
    ['create in the bucket', ['/bkt'], () => createFile(vfs, '/bkt/top')],
  ];
  for (const [name, dirs, step] of steps) {
    const before = await Promise.all(dirs.map((d) => vfs.getattr(d)));
    await tick();
    await step();
    for (const [i, dir] of dirs.entries()) {
      const after = await vfs.getattr(dir);
      t.ok(after.mtime > before[i]!.mtime, `${name}: ${dir} mtime moves`);
      t.ok(after.ctime > before[i]!.ctime, `${name}: ${dir} ctime moves`);
    }
  }
  await vfs.utimens('/bkt/b', 5_000, 6_000);
  t.equal((await vfs.getattr('/bkt/b')).mtime, 6_000, 'touch -d on a directory shows what was set');
});

t.test('directory times are stored, at most once an interval per directory', async (t) => {
  const times = new DirTimes();
  t.equal(times.touch('b', 'd', 10_000), 10_000, 'the first change is stored');
  t.equal(times.touch('b', 'd', 10_500), undefined, 'the next within the interval is not');
  t.equal(times.touch('b', 'e', 10_500), 10_500, 'another directory is counted apart');
  t.equal(times.touch('b', 'd', 10_000 + PERSIST_INTERVAL_MS), 10_000 + PERSIST_INTERVAL_MS, 'a later one is');
  const attrs = { mode: 0o755, uid: 0, gid: 0, atimeMs: 1, mtimeMs: 2, ctimeMs: 3 };
  t.same(times.apply('b', 'd', attrs), { ...attrs, mtimeMs: 11_000, ctimeMs: 11_000 }, 'the overlay is newer');
  times.drop('b', 'd');
  t.same(times.apply('b', 'd', attrs), attrs, 'dropped: the stored times again');
  times.stored('b', 'n', 20_000);
  t.equal(times.touch('b', 'n', 20_100), undefined, 'just written by mkdir: nothing to store');

  // Through the Vfs: another process (a second Vfs on the same store) sees the stored time.
  const { vfs, lilio } = await setup(t);
  await vfs.mkdir('/bkt/d', 0o755);
  await new Promise((r) => setTimeout(r, PERSIST_INTERVAL_MS + 10));
  await createFile(vfs, '/bkt/d/f');
  const other = new Vfs(lilio, { readOnly: false, maxDirtyBuffers: 4, sealsInFlight: 2 });
  t.equal((await other.getattr('/bkt/d')).mtime, (await vfs.getattr('/bkt/d')).mtime, 'stored on the marker');
  t.equal((await other.getattr('/bkt')).mtime, (await vfs.getattr('/bkt')).mtime, 'and on the bucket');
});

t.test('RENAME_NOREPLACE: EEXIST and nothing moves; plain rename replaces', async (t) => {
  const { vfs } = await setup(t);
  await createFile(vfs, '/bkt/a', 'aaa');
  await createFile(vfs, '/bkt/b', 'bb');
  await vfs.mkdir('/bkt/d', 0o755);
  t.equal(await errnoOf(vfs.rename('/bkt/a', '/bkt/b', { noReplace: true })), -osConstants.errno.EEXIST);
  t.equal(await errnoOf(vfs.rename('/bkt/d', '/bkt/b', { noReplace: true })), -osConstants.errno.EEXIST);
  t.equal((await vfs.getattr('/bkt/a')).size, 3, 'the source stays');
  t.equal((await vfs.getattr('/bkt/b')).size, 2, 'the target stays');
  await vfs.rename('/bkt/a', '/bkt/c', { noReplace: true });
  t.equal((await vfs.getattr('/bkt/c')).size, 3, 'to a free name it moves');
  await vfs.rename('/bkt/c', '/bkt/b');
  t.equal((await vfs.getattr('/bkt/b')).size, 3, 'a plain rename replaces');
});

t.test('RENAME_EXCHANGE swaps two files in one commit, open handles follow their file', async (t) => {
  const { vfs, lilio } = await setup(t);
  await createFile(vfs, '/bkt/a', 'content of a');
  await vfs.mknod('/bkt/p', 'fifo', 0o600, 0);
  await vfs.mkdir('/bkt/d', 0o755);
  await createFile(vfs, '/bkt/d/b', 'bb');
  const fd = await vfs.open('/bkt/a', O_RDWR);
  await vfs.write(fd, Buffer.from('CONTENT'), 7, 0);
  await vfs.exchange('/bkt/a', '/bkt/d/b');
  t.equal((await vfs.getattr('/bkt/a')).size, 2, 'a now holds b');
  t.equal((await vfs.getattr('/bkt/d/b')).size, 12, 'd/b now holds a, with what was written to it');
  await vfs.write(fd, Buffer.from('!'), 1, 11);
  await vfs.release(fd);
  const read = await vfs.open('/bkt/d/b', O_RDONLY);
  const out = Buffer.alloc(12);
  await vfs.read(read, out, 12, 0);
  await vfs.release(read);
  t.equal(out.toString(), 'CONTENT of !', 'the open handle kept writing to its own file, now at d/b');
  t.equal((await lilio.headObject('bkt', 'a')).size, 2, 'the store agrees');

  await vfs.exchange('/bkt/a', '/bkt/p');
  t.equal((await vfs.getattr('/bkt/a')).mode & S_IFMT, S_IFIFO, 'a fifo swaps too');
  t.equal((await vfs.getattr('/bkt/p')).size, 2);
  t.equal(await errnoOf(vfs.exchange('/bkt/a', '/bkt/d')), -osConstants.errno.EINVAL, 'directories: EINVAL');
  t.equal(await errnoOf(vfs.exchange('/bkt/a', '/bkt/none')), -osConstants.errno.ENOENT, 'a missing name: ENOENT');
  await lilio.createBucket('other');
  await createFile(vfs, '/other/x', 'x');
  t.equal(await errnoOf(vfs.exchange('/bkt/a', '/other/x')), -osConstants.errno.EINVAL, 'across buckets: EINVAL');
  t.equal((await vfs.getattr('/bkt/a')).mode & S_IFMT, S_IFIFO, 'a refused exchange changes nothing');
});

t.test('a file renamed while open keeps being edited there: its close commits, no conflict with itself', async (t) => {
  const { vfs, lilio } = await setup(t);
  await vfs.mkdir('/bkt/dir', 0o755, alice);
  const fd = await vfs.create('/bkt/dir/log', 0o644, alice);
  await vfs.write(fd, Buffer.from('one;'), 4, 0);
  await vfs.fsync(fd);
  await vfs.rename('/bkt/dir/log', '/bkt/dir/log.1');
  await vfs.write(fd, Buffer.from('two;'), 4, 4);
  await vfs.fsync(fd);
  await vfs.rename('/bkt/dir', '/bkt/moved');
  await vfs.write(fd, Buffer.from('three'), 5, 8);
  await vfs.release(fd);
  const record = await lilio.meta.getObject('bkt', 'moved/log.1');
  t.equal(record?.size, 13, "every edit landed at the file's latest name");
  const rd = await vfs.open('/bkt/moved/log.1', O_RDONLY);
  const out = Buffer.alloc(13);
  await vfs.read(rd, out, 13, 0);
  await vfs.release(rd);
  t.equal(out.toString(), 'one;two;three');
});
