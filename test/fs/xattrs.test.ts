import { join } from 'node:path';
import t from 'tap';
import { localDir, type MountedLilio, ok, run, sh, startMount } from '../fixtures/mount.js';
import { parseExposition } from '../fixtures/promql.js';

// user.* extended attributes through a real mount with setfattr/getfattr (Debian's attr), and
// --no-xattrs, which leaves the xattr calls unimplemented so that `ls -l` costs one FUSE call per file.

const getfattr = (path: string, name: string) => run('getfattr', ['--only-values', '-n', name, path]);

t.test('user.* attributes are stored with the object and survive a remount', async (t) => {
  let m: MountedLilio = await startMount(t);
  const bucket = join(m.dir, 'tagged');
  await ok(t, run('mkdir', [bucket]), 'mkdir a bucket');
  const file = join(bucket, 'photo.jpg');
  const dir = join(bucket, 'album');
  await ok(t, sh('printf jpeg > "$1"', [file]), 'a file');
  await ok(t, run('mkdir', [dir]), 'an empty directory');

  await ok(t, run('setfattr', ['-n', 'user.color', '-v', 'blue', file]), 'setfattr on a file');
  await ok(t, run('setfattr', ['-n', 'user.empty', '-v', '""', file]), 'an empty value');
  await ok(t, run('setfattr', ['-n', 'user.binary', '-v', '0x00ff7f', file]), 'a binary value');
  await ok(t, run('setfattr', ['-n', 'user.kind', '-v', 'album', dir]), 'setfattr on a directory');
  t.equal((await getfattr(file, 'user.color')).stdout, 'blue', 'getfattr reads the value back');
  t.equal(
    (await run('getfattr', ['-e', 'hex', '-n', 'user.binary', file])).stdout.trim().split('\n').pop(),
    'user.binary=0x00ff7f',
    'binary bytes exactly',
  );
  t.equal((await getfattr(dir, 'user.kind')).stdout, 'album');
  const dumped = await ok(t, run('getfattr', ['-d', file]), 'getfattr -d lists them');
  t.match(dumped.stdout, /user\.color="blue"/);
  t.match(dumped.stdout, /user\.binary=/);

  await ok(t, run('setfattr', ['-x', 'user.empty', file]), 'setfattr -x removes one');
  const gone = await getfattr(file, 'user.empty');
  t.not(gone.code, 0, 'a removed attribute is gone');
  t.match(gone.stderr, /No such attribute/, 'ENODATA');
  const absent = await run('setfattr', ['-x', 'user.never', file]);
  t.match(absent.stderr, /No such attribute/, 'removing one that never was: ENODATA');
  const trusted = await run('setfattr', ['-n', 'trusted.x', '-v', '1', file]);
  t.match(trusted.stderr, /Operation not supported/, 'only user.* is stored: ENOTSUP');
  const missing = await run('setfattr', ['-n', 'user.color', '-v', 'red', join(bucket, 'missing')]);
  t.match(missing.stderr, /No such file or directory/, 'on a missing file: ENOENT');

  // Set while the file is open for writing: it goes in with the data at close.
  await ok(
    t,
    sh('exec 3>"$1"; printf new >&3; setfattr -n user.stage -v draft "$1"; exec 3>&-', [join(bucket, 'open.txt')]),
    'setfattr while another descriptor writes',
  );
  t.equal((await getfattr(join(bucket, 'open.txt'), 'user.stage')).stdout, 'draft');

  await m.stop();
  m = await m.remount();
  const again = join(m.dir, 'tagged');
  t.equal((await getfattr(join(again, 'photo.jpg'), 'user.color')).stdout, 'blue', 'after a remount');
  t.equal((await getfattr(join(again, 'album'), 'user.kind')).stdout, 'album');
  t.equal((await getfattr(join(again, 'open.txt'), 'user.stage')).stdout, 'draft');
  t.match((await m.cli(['stat', 'tagged/photo.jpg', '--json'])).stdout.toString(), /user\.color/, 'the CLI sees them');
  await ok(t, run('mv', [join(again, 'photo.jpg'), join(again, 'moved.jpg')]), 'mv');
  t.equal((await getfattr(join(again, 'moved.jpg'), 'user.color')).stdout, 'blue', 'a rename keeps them');

  // In an encrypted bucket the stored value is sealed; the mount and `lilio stat` show the plaintext.
  const vault = await m.cli(['bucket', 'create', 'vault', '--encrypt']);
  t.equal(vault.code, 0, vault.stderr);
  const secret = join(m.dir, 'vault', 'note.txt');
  await ok(t, sh('printf note > "$1"', [secret]), 'a file in it');
  await ok(t, run('setfattr', ['-n', 'user.owner', '-v', 'alice-in-vault', secret]), 'setfattr');
  t.equal((await getfattr(secret, 'user.owner')).stdout, 'alice-in-vault', 'getfattr shows the plaintext');
  const stat = await m.cli(['stat', 'vault/note.txt']);
  t.match(stat.stdout.toString(), /user\.owner\s+"alice-in-vault"/, 'so does lilio stat');
  const raw = await m.cli(['meta', 'dump']);
  t.match(raw.stdout.toString(), /user\.owner/, 'the dump holds the attribute');
  t.notMatch(raw.stdout.toString(), Buffer.from('alice-in-vault').toString('base64'), 'but not its value');
});

t.test('--no-xattrs: ENOTSUP, and ls -l no longer asks for attributes', async (t) => {
  const m = await startMount(t, { args: ['--no-xattrs'], metrics: true });
  const bucket = join(m.dir, 'plain');
  await ok(t, run('mkdir', [bucket]), 'mkdir a bucket');
  const local = localDir(t);
  await ok(t, sh('for i in 1 2 3 4 5; do printf "$i" > "$1/f$i"; done', [local]), 'five files');
  await ok(t, run('cp', ['-r', local, join(bucket, 'tree')]), 'cp -r');
  const set = await run('setfattr', ['-n', 'user.color', '-v', 'blue', join(bucket, 'tree', 'f1')]);
  t.match(set.stderr, /Operation not supported/, 'setfattr: ENOTSUP');
  const got = await getfattr(join(bucket, 'tree', 'f1'), 'user.color');
  t.match(got.stderr, /Operation not supported/, 'getfattr: ENOTSUP');

  const getxattrCalls = async () => {
    const text = await (await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`)).text();
    return parseExposition(text)
      .filter((s) => s.name === 'lilio_fuse_ops_total' && s.labels.op === 'getxattr')
      .reduce((n, s) => n + s.value, 0);
  };
  const ls = await ok(t, run('ls', ['-l', join(bucket, 'tree')]), 'ls -l');
  t.equal(ls.stdout.trim().split('\n').length, 6, 'lists the five files');
  t.equal(await getxattrCalls(), 0, 'no getxattr call reached the mount');
});
