import t from 'tap';
import { childPath, InodeTable, ROOT_INO } from '../../src/fs/inode-table.js';

t.test('numbers are stable per path while known, and new after forget', async (t) => {
  const table = new InodeTable();
  t.equal(table.path(ROOT_INO), '/');
  const a = table.ensure('/b/a');
  t.equal(table.ensure('/b/a'), a, 'the same path keeps its number');
  t.not(table.ensure('/b/c'), a);
  table.forget(a);
  t.equal(table.path(a), undefined, 'forgotten');
  t.not(table.ensure('/b/a'), a, 'a later lookup gets a fresh number');
  table.forget(ROOT_INO);
  t.equal(table.path(ROOT_INO), '/', 'the root is never forgotten');
});

t.test('rename moves a directory and everything below it; the replaced target is detached', async (t) => {
  const table = new InodeTable();
  const dir = table.ensure('/b/d');
  const file = table.ensure('/b/d/sub/f');
  const target = table.ensure('/b/e');
  table.rename('/b/d', '/b/e');
  t.equal(table.path(dir), '/b/e');
  t.equal(table.path(file), '/b/e/sub/f');
  t.equal(table.peek('/b/d'), undefined);
  t.equal(table.peek('/b/e'), dir);
  t.ok(table.isDetached(target), 'what /b/e was is detached');
  t.notOk(table.isDetached(dir));
  table.forget(target);
  t.equal(table.peek('/b/e'), dir, 'forgetting the detached inode leaves the new owner of the path alone');
});

t.test('unlink detaches: the path is free for a new file, the old number lives until forgotten', async (t) => {
  const table = new InodeTable();
  const old = table.ensure('/b/f');
  table.detach('/b/f');
  t.ok(table.isDetached(old));
  t.equal(table.path(old), '/b/f', 'the old inode still knows where it was (fgetattr by descriptor)');
  const fresh = table.ensure('/b/f');
  t.not(fresh, old);
  table.forget(old);
  t.equal(table.peek('/b/f'), fresh);
  t.equal(childPath('/', 'b'), '/b');
  t.equal(childPath('/b', 'x'), '/b/x');
});

t.test('exchange: each inode takes the other path', async (t) => {
  const table = new InodeTable();
  const a = table.ensure('/b/a');
  const c = table.ensure('/b/d/c');
  table.exchange('/b/a', '/b/d/c');
  t.equal(table.path(a), '/b/d/c');
  t.equal(table.path(c), '/b/a');
  t.equal(table.peek('/b/a'), c);
  t.equal(table.peek('/b/d/c'), a);
  table.exchange('/b/a', '/b/unknown');
  t.equal(table.path(c), '/b/unknown', 'a name the kernel has no inode for is simply taken');
  t.equal(table.peek('/b/a'), undefined);
});
