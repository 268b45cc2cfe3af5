import t, { type Test } from 'tap';
import { Vfs } from '../../src/fs/vfs.js';
import { testEngine } from '../fixtures/engine.js';

// user.* values in an encrypted bucket are sealed with the bucket's key in the metadata store and
// read back in plaintext through the filesystem and `stat`; driven through the Vfs, no FUSE needed.

const SECRET = 'TOP-SECRET-XATTR-VALUE';

async function setup(t: Test) {
  const { lilio, meta } = await testEngine();
  t.teardown(() => lilio.close());
  await lilio.createBucket('secret', { encrypt: true });
  await lilio.createBucket('plain');
  const vfs = new Vfs(lilio, { readOnly: false, maxDirtyBuffers: 4, sealsInFlight: 2 });
  const write = async (path: string, text: string) => {
    const fd = await vfs.create(path, 0o644);
    await vfs.write(fd, Buffer.from(text), text.length, 0);
    await vfs.release(fd);
  };
  return { lilio, meta, vfs, write };
}

const rawXattrs = async (
  meta: { getObject(b: string, k: string): Promise<{ xattrs?: object } | undefined> },
  bucket: string,
  key: string,
) => JSON.stringify((await meta.getObject(bucket, key))?.xattrs ?? {});

t.test('encrypted bucket: values are sealed in the store, plaintext through the mount', async (t) => {
  const { lilio, meta, vfs, write } = await setup(t);
  await write('/secret/doc.txt', 'body');
  await vfs.mkdir('/secret/dir', 0o755);
  await vfs.setxattr('/secret/doc.txt', 'user.label', Buffer.from(SECRET));
  await vfs.setxattr('/secret/dir', 'user.label', Buffer.from(SECRET));

  for (const key of ['doc.txt', 'dir/']) {
    const raw = await rawXattrs(meta, 'secret', key);
    t.match(raw, /user\.label/, `${key}: the name is stored`);
    t.notMatch(raw, SECRET, `${key}: no plaintext in the record`);
    t.notMatch(raw, Buffer.from(SECRET).toString('base64'), `${key}: not even in base64`);
  }
  t.equal((await vfs.getxattr('/secret/doc.txt', 'user.label')).toString(), SECRET, 'getxattr');
  t.equal((await vfs.getxattr('/secret/dir', 'user.label')).toString(), SECRET, 'on a directory too');
  t.same(await vfs.listxattr('/secret/doc.txt'), ['user.label'], 'listxattr');
  const stat = await lilio.statObject('secret', 'doc.txt');
  t.equal(Buffer.from(stat.xattrs!['user.label']!, 'base64').toString(), SECRET, 'stat shows the plaintext');

  // A rename moves the record to a new key, a rewrite gives it a new versionId: the value still opens.
  await vfs.rename('/secret/doc.txt', '/secret/moved.txt');
  t.equal((await vfs.getxattr('/secret/moved.txt', 'user.label')).toString(), SECRET, 'after a rename');
  await vfs.rename('/secret/dir', '/secret/dir2');
  t.equal((await vfs.getxattr('/secret/dir2', 'user.label')).toString(), SECRET, 'after a directory rename');
  const fd = await vfs.open('/secret/moved.txt', 1);
  await vfs.write(fd, Buffer.from('new body'), 8, 0);
  await vfs.release(fd);
  t.equal((await vfs.getxattr('/secret/moved.txt', 'user.label')).toString(), SECRET, 'after a content commit');

  // Across buckets a file is copied: the value is re-sealed for (here: opened into) the other bucket.
  await vfs.rename('/secret/moved.txt', '/plain/copied.txt');
  t.equal((await vfs.getxattr('/plain/copied.txt', 'user.label')).toString(), SECRET, 'copied to a plain bucket');
  t.match(await rawXattrs(meta, 'plain', 'copied.txt'), Buffer.from(SECRET).toString('base64'), 'stored plain there');
  await vfs.rename('/plain/copied.txt', '/secret/back.txt');
  t.notMatch(await rawXattrs(meta, 'secret', 'back.txt'), Buffer.from(SECRET).toString('base64'), 'and sealed again');
  t.equal((await vfs.getxattr('/secret/back.txt', 'user.label')).toString(), SECRET);
});

t.test('encrypted bucket: old plain values still read; a value moved to another name does not open', async (t) => {
  const { lilio, meta, vfs, write } = await setup(t);
  await write('/secret/f', 'x');
  await vfs.setxattr('/secret/f', 'user.a', Buffer.from('sealed'));
  const record = (await meta.getObject('secret', 'f'))!;
  const { version, ...draft } = record;
  // A value written before sealing existed is plain base64: it keeps reading.
  await lilio.commitRecord(
    { ...draft, xattrs: { ...record.xattrs, 'user.old': Buffer.from('legacy').toString('base64') } },
    { version },
  );
  t.equal((await vfs.getxattr('/secret/f', 'user.old')).toString(), 'legacy');
  t.equal((await vfs.getxattr('/secret/f', 'user.a')).toString(), 'sealed');
  const again = (await meta.getObject('secret', 'f'))!;
  const { version: v2, ...draft2 } = again;
  await lilio.commitRecord(
    { ...draft2, xattrs: { ...again.xattrs, 'user.b': again.xattrs!['user.a']! } },
    { version: v2 },
  );
  await t.rejects(vfs.getxattr('/secret/f', 'user.b'), { code: 'INTEGRITY' }, 'bound to its name');
});

t.test('plain bucket: values stay plain base64', async (t) => {
  const { meta, vfs, write } = await setup(t);
  await write('/plain/f', 'x');
  await vfs.setxattr('/plain/f', 'user.color', Buffer.from('blue'));
  t.equal(
    await rawXattrs(meta, 'plain', 'f'),
    JSON.stringify({ 'user.color': Buffer.from('blue').toString('base64') }),
  );
  t.equal((await vfs.getxattr('/plain/f', 'user.color')).toString(), 'blue');
});
