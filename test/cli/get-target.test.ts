import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../fixtures/cli.js';

// `lilio get` replaces only a regular file (or a new name) by rename; any other target is
// written through, as cp and curl do. Renaming over /dev/null as root replaced the device.

const home = mkdtempSync(join(tmpdir(), 'lilio-get-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const lilio = (args: string[], input?: Buffer) => runCli(args, env, input);
const data = randomBytes(300_000);
const out = join(home, 'out');
mkdirSync(out);

const oneLine = (t: Test, stderr: string) => {
  t.equal(stderr.trim().split('\n').length, 1, `one line on stderr: ${stderr}`);
  t.notMatch(stderr, /^\s+at /m, 'no stack frames');
};

/** Entries other than the ones named: a temporary file left behind would show here. */
const leftovers = (dir: string, expected: string[]) => readdirSync(dir).filter((n) => !expected.includes(n));

t.test('setup: an object to get', async (t) => {
  t.equal((await lilio(['bucket', 'create', 'docs'])).code, 0);
  const put = await lilio(['put', '-', 'docs/deep/report.bin'], data);
  t.equal(put.code, 0, put.stderr);
});

t.test('a character device is written through, not replaced', async (t) => {
  const device = join(out, 'null');
  execFileSync('mknod', [device, 'c', '1', '3']);
  const got = await lilio(['get', 'docs/deep/report.bin', device]);
  t.equal(got.code, 0, got.stderr);
  const after = lstatSync(device);
  t.ok(after.isCharacterDevice(), 'still a character device');
  t.equal(after.rdev, statSync('/dev/null').rdev, 'still /dev/null');
  t.same(leftovers(out, ['null']), [], 'no temporary file left');
  rmSync(device);
});

t.test('a FIFO is written through to its reader', async (t) => {
  const fifo = join(out, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const reader = spawn('cat', [fifo]);
  const chunks: Buffer[] = [];
  reader.stdout.on('data', (d: Buffer) => chunks.push(d));
  const read = new Promise<number | null>((resolve) => reader.on('close', resolve));
  const got = await lilio(['get', 'docs/deep/report.bin', fifo]);
  t.equal(got.code, 0, got.stderr);
  t.equal(await read, 0);
  t.ok(Buffer.concat(chunks).equals(data), 'the reader got the whole object');
  t.ok(lstatSync(fifo).isFIFO(), 'still a FIFO');
  t.same(leftovers(out, ['pipe']), []);
  rmSync(fifo);
});

t.test('a symlink stays a link; the file it points at gets the content', async (t) => {
  const real = join(out, 'real.bin');
  writeFileSync(real, 'old content', { mode: 0o640 });
  const link = join(out, 'link.bin');
  symlinkSync('real.bin', link);
  const got = await lilio(['get', 'docs/deep/report.bin', link]);
  t.equal(got.code, 0, got.stderr);
  t.ok(lstatSync(link).isSymbolicLink(), 'still a symlink');
  t.equal(readlinkSync(link), 'real.bin', 'pointing where it did');
  t.ok(readFileSync(real).equals(data), 'the target file holds the object');
  t.equal(statSync(real).mode & 0o777, 0o640, 'the replaced file keeps its permission bits');
  t.same(leftovers(out, ['real.bin', 'link.bin']), []);

  const dangling = join(out, 'dangling');
  symlinkSync('created.bin', dangling);
  const through = await lilio(['get', 'docs/deep/report.bin', dangling]);
  t.equal(through.code, 0, through.stderr);
  t.ok(lstatSync(dangling).isSymbolicLink());
  t.ok(readFileSync(join(out, 'created.bin')).equals(data), 'a dangling link is written through, as curl does');
  for (const name of ['real.bin', 'link.bin', 'dangling', 'created.bin']) rmSync(join(out, name));
});

t.test('a regular file is replaced whole; a directory target gets DIR/BASENAME', async (t) => {
  const file = join(out, 'plain.bin');
  writeFileSync(file, 'old', { mode: 0o600 });
  chownSync(file, 1234, 5678);
  const got = await lilio(['get', 'docs/deep/report.bin', file]);
  t.equal(got.code, 0, got.stderr);
  t.ok(readFileSync(file).equals(data));
  t.match(statSync(file), { uid: 1234, gid: 5678 }, 'the replaced file keeps its owner');
  t.equal(statSync(file).mode & 0o777, 0o600, 'and its permission bits');
  const slash = await lilio(['get', 'docs/deep/report.bin', join(out, 'nodir/')]);
  t.equal(slash.code, 1);
  t.match(slash.stderr, /nodir\/: no such directory/);

  const intoDir = await lilio(['get', 'docs/deep/report.bin', out]);
  t.equal(intoDir.code, 0, intoDir.stderr);
  t.ok(readFileSync(join(out, 'report.bin')).equals(data), 'written as DIR/BASENAME of the key');
  mkdirSync(join(out, 'sub', 'report.bin'), { recursive: true });
  const clash = await lilio(['get', 'docs/deep/report.bin', join(out, 'sub')]);
  t.equal(clash.code, 1);
  t.match(clash.stderr, /report\.bin is a directory/);
  oneLine(t, clash.stderr);
  t.same(leftovers(out, ['plain.bin', 'report.bin', 'sub']), []);
  rmSync(join(out, 'sub'), { recursive: true });
});

t.test('a target that cannot be written fails before anything is downloaded', async (t) => {
  // The object does not exist: an error about the target proves it was checked first.
  const missingParent = join(out, 'no', 'such', 'dir', 'x.bin');
  const parent = await lilio(['get', 'docs/none', missingParent]);
  t.equal(parent.code, 1);
  t.equal(parent.stderr, `lilio: ${missingParent}: no such file or directory\n`, 'says so in our words');
  t.notOk(statSync(join(out, 'no'), { throwIfNoEntry: false }), 'no directory tree was created');

  // Root passes permission bits; an immutable directory refuses even root.
  const locked = join(out, 'locked');
  mkdirSync(locked);
  try {
    execFileSync('chattr', ['+i', locked], { stdio: 'ignore' });
  } catch {
    t.pass('chattr +i is not supported here: the immutable-directory case is not checked');
    return;
  }
  t.teardown(() => execFileSync('chattr', ['-i', locked]));
  for (const object of ['docs/none', 'docs/deep/report.bin']) {
    const refused = await lilio(['get', object, join(locked, 'x.bin')]);
    t.equal(refused.code, 1, object);
    t.match(refused.stderr, /^lilio: .*locked\/x\.bin: (operation not permitted|permission denied)\n$/, object);
    t.notMatch(refused.stderr, /\.tmp|EPERM|EACCES/, 'no temporary name, no raw Node code');
    oneLine(t, refused.stderr);
  }
  t.same(readdirSync(locked), [], 'nothing was left in the directory');
});
