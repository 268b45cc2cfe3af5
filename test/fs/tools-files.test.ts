import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localDir, type MountedLilio, ok, run, sh, startMount } from '../fixtures/mount.js';

// Everyday tools on single files and directories: ls -l, mkdir -p, mv, rm -rf, dd, truncate, echo >>.

const MiB = 1024 * 1024;
let m: MountedLilio;
let local: string;
let B: string;
t.before(async () => {
  m = await startMount(t);
  local = localDir(t);
  B = join(m.dir, 'files');
  await ok(t, run('mkdir', [B]), 'mkdir a bucket');
  const created = await m.cli(['bucket', 'create', 'vault', '--encrypt']);
  t.equal(created.code, 0, 'encrypted bucket created', { stderr: created.stderr });
});

t.test('ls -l shows sizes, modes and types', async (t) => {
  const dir = join(B, 'ls');
  await ok(t, run('mkdir', [dir]), 'mkdir');
  writeFileSync(join(local, 'ls-a'), randomBytes(12345));
  await ok(t, run('cp', [join(local, 'ls-a'), join(dir, 'a.bin')]), 'cp a.bin');
  await ok(t, sh('printf hello > "$1"', [join(dir, 'b.txt')]), 'printf > b.txt');
  await ok(t, run('chmod', ['640', join(dir, 'a.bin')]), 'chmod 640');
  await ok(t, run('chmod', ['755', join(dir, 'b.txt')]), 'chmod 755');
  await ok(t, run('mkdir', ['-m', '700', join(dir, 'sub')]), 'mkdir -m 700');
  await ok(t, run('ln', ['-s', 'a.bin', join(dir, 'link')]), 'ln -s');
  const ls = await ok(t, run('ls', ['-l', dir]), 'ls -l');
  const rows = new Map(
    ls.stdout
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => {
        const cols = line.split(/\s+/);
        return [cols[8]!, { mode: cols[0]!, size: cols[4]!, rest: cols.slice(8).join(' ') }];
      }),
  );
  t.match(rows.get('a.bin'), { mode: '-rw-r-----', size: '12345' }, 'a.bin');
  t.match(rows.get('b.txt'), { mode: '-rwxr-xr-x', size: '5' }, 'b.txt');
  t.match(rows.get('sub'), { mode: 'drwx------' }, 'sub');
  t.match(rows.get('link'), { mode: 'lrwxrwxrwx', size: '5', rest: 'link -> a.bin' }, 'link');
  t.equal(rows.size, 4, 'nothing else listed');
  const top = await ok(t, run('ls', ['-l', m.dir]), 'ls -l the root');
  t.match(top.stdout, /^d\S+ .* files$/m, 'buckets are directories at the root');
});

t.test('mkdir -p makes a deep path; files live at every level', async (t) => {
  const deep = join(B, 'p', 'q', 'r', 's');
  await ok(t, run('mkdir', ['-p', deep]), 'mkdir -p');
  await ok(t, run('mkdir', ['-p', deep]), 'mkdir -p again is fine');
  await ok(t, sh('echo top > "$1/p/top.txt" && echo deep > "$2/deep.txt"', [B, deep]), 'write at two levels');
  const find = await ok(t, run('find', [join(B, 'p')]), 'find');
  t.same(
    find.stdout.trim().split('\n').sort(),
    ['', '/q', '/q/r', '/q/r/s', '/q/r/s/deep.txt', '/top.txt'].map((p) => join(B, 'p') + p).sort(),
    'find sees the whole tree',
  );
  const empty = await ok(t, run('ls', ['-A', join(B, 'p', 'q', 'r')]), 'ls an intermediate directory');
  t.equal(empty.stdout, 's\n');
  t.equal(readFileSync(join(deep, 'deep.txt'), 'utf8'), 'deep\n');
});

t.test('mv: rename, replace a target, into a directory, directories, between buckets', async (t) => {
  const dir = join(B, 'mv');
  await ok(t, run('mkdir', ['-p', join(dir, 'into')]), 'mkdir');
  const one = randomBytes(3 * MiB + 17);
  const two = randomBytes(5000);
  writeFileSync(join(local, 'mv-one'), one);
  writeFileSync(join(local, 'mv-two'), two);
  await ok(t, run('cp', [join(local, 'mv-one'), join(dir, 'one')]), 'cp one');
  await ok(t, run('cp', [join(local, 'mv-two'), join(dir, 'two')]), 'cp two');

  await ok(t, run('mv', [join(dir, 'one'), join(dir, 'uno')]), 'mv rename');
  t.notOk(existsSync(join(dir, 'one')), 'the old name is gone');
  await ok(t, run('cmp', [join(local, 'mv-one'), join(dir, 'uno')]), 'the content moved');

  await ok(t, run('mv', [join(dir, 'uno'), join(dir, 'two')]), 'mv onto an existing file');
  t.notOk(existsSync(join(dir, 'uno')), 'the source is gone');
  await ok(t, run('cmp', [join(local, 'mv-one'), join(dir, 'two')]), 'the target has the source content');
  t.same(readdirSync(dir).sort(), ['into', 'two'], 'one file left');

  await ok(t, run('mv', [join(dir, 'two'), join(dir, 'into')]), 'mv into a directory');
  await ok(t, run('cmp', [join(local, 'mv-one'), join(dir, 'into', 'two')]), 'the file is in the directory');

  await ok(t, sh('mkdir -p "$1/tree/a/b" && echo x > "$1/tree/a/b/x" && echo y > "$1/tree/y"', [dir]), 'a tree');
  await ok(t, run('mv', [join(dir, 'tree'), join(dir, 'renamed')]), 'mv a directory');
  t.notOk(existsSync(join(dir, 'tree')), 'the old directory is gone');
  t.equal(readFileSync(join(dir, 'renamed', 'a', 'b', 'x'), 'utf8'), 'x\n', 'deep file moved');
  t.equal(readFileSync(join(dir, 'renamed', 'y'), 'utf8'), 'y\n', 'top file moved');
  await ok(t, run('mv', [join(dir, 'renamed'), join(dir, 'into')]), 'mv a directory into another');
  t.equal(readFileSync(join(dir, 'into', 'renamed', 'a', 'b', 'x'), 'utf8'), 'x\n', 'nested move');

  // Between buckets (the second is encrypted): one file, then a whole directory.
  const vault = join(m.dir, 'vault');
  await ok(t, run('mv', [join(dir, 'into', 'two'), join(vault, 'two')]), 'mv a file to another bucket');
  t.notOk(existsSync(join(dir, 'into', 'two')), 'gone from the first bucket');
  await ok(t, run('cmp', [join(local, 'mv-one'), join(vault, 'two')]), 'whole in the second bucket');
  await ok(t, run('mv', [join(dir, 'into', 'renamed'), join(vault, 'moved')]), 'mv a directory to another bucket');
  t.notOk(existsSync(join(dir, 'into', 'renamed')), 'the directory left the first bucket');
  t.equal(readFileSync(join(vault, 'moved', 'a', 'b', 'x'), 'utf8'), 'x\n', 'and arrived in the second');
});

t.test('rm -rf removes a whole tree and nothing else', async (t) => {
  const root = join(B, 'rm');
  await ok(
    t,
    sh(
      'mkdir -p "$1/keep" "$1/tree/a/b/c" "$1/tree/empty" && for i in 1 2 3 4 5; do echo $i > "$1/tree/f$i"; echo $i > "$1/tree/a/b/c/g$i"; done && echo k > "$1/keep/k"',
      [root],
    ),
    'build a tree',
  );
  await ok(t, run('cp', [join(local, 'mv-one'), join(root, 'tree', 'a', 'big')]), 'with a multi-chunk file');
  await ok(t, run('rm', ['-rf', join(root, 'tree')]), 'rm -rf');
  t.notOk(existsSync(join(root, 'tree')), 'the tree is gone');
  t.same(readdirSync(root), ['keep'], 'its sibling stays');
  t.equal(readFileSync(join(root, 'keep', 'k'), 'utf8'), 'k\n');
  await ok(t, run('rm', ['-rf', root]), 'rm -rf the rest');
  t.notOk(existsSync(root), 'all gone');
});

for (const bucket of ['files', 'vault']) {
  t.test(`dd seek= and conv=notrunc rewrite in place (${bucket})`, async (t) => {
    const target = join(m.dir, bucket, 'dd.bin');
    const expected = join(local, `dd-expected-${bucket}`);
    const patch = join(local, 'dd-patch');
    writeFileSync(expected, randomBytes(3 * MiB + 100));
    writeFileSync(patch, randomBytes(2 * MiB));
    await ok(t, run('cp', [expected, target]), 'cp the original');
    // Each step runs against the mount and against the local copy; the two must stay equal.
    const steps: Array<[string, string[]]> = [
      ['a block inside the first chunk', ['bs=4096', 'seek=10', 'count=1', 'conv=notrunc']],
      [
        'bytes straddling the first chunk boundary',
        ['bs=1000', `seek=${Math.floor(MiB / 1000)}`, 'count=3', 'conv=notrunc'],
      ],
      ['a whole aligned chunk', ['bs=1M', 'seek=1', 'count=1', 'conv=notrunc']],
      ['past the end: grows with a hole', ['bs=1M', 'seek=5', 'count=1', 'conv=notrunc']],
      ['one byte at offset 0', ['bs=1', 'count=1', 'conv=notrunc']],
      ['without notrunc: cut after the write', ['bs=4096', 'seek=300', 'count=2']],
      ['in the last, partial chunk', ['bs=512', 'seek=2100', 'count=5', 'conv=notrunc']],
    ];
    for (const [what, args] of steps) {
      await ok(t, run('dd', [`if=${patch}`, `of=${target}`, ...args, 'status=none']), `dd ${what}`);
      await ok(t, run('dd', [`if=${patch}`, `of=${expected}`, ...args, 'status=none']), `local dd ${what}`);
      t.equal(statSync(target).size, statSync(expected).size, `size after ${what}`);
      await ok(t, run('cmp', [expected, target]), `content after ${what}`);
    }
  });
}

t.test('truncate grows with zeros and shrinks', async (t) => {
  const target = join(B, 'trunc.bin');
  const expected = join(local, 'trunc-expected');
  writeFileSync(expected, randomBytes(2 * MiB + 5));
  await ok(t, run('cp', [expected, target]), 'cp');
  for (const size of ['5000000', '1000', '3M', '0', '4097', '1048576', '1048577']) {
    await ok(t, run('truncate', ['-s', size, target]), `truncate -s ${size}`);
    await ok(t, run('truncate', ['-s', size, expected]), `local truncate -s ${size}`);
    t.equal(statSync(target).size, statSync(expected).size, `size ${size}`);
    await ok(t, run('cmp', [expected, target]), `content after truncate -s ${size}`);
  }
  // Grown again after a shrink, the old bytes must not come back: they read as zeros.
  writeFileSync(expected, randomBytes(3 * MiB));
  await ok(t, run('cp', [expected, target]), 'cp a fresh copy');
  await ok(t, sh('truncate -s 10 "$1" && truncate -s 2M "$1"', [target]), 'shrink then grow on the mount');
  await ok(t, sh('truncate -s 10 "$1" && truncate -s 2M "$1"', [expected]), 'the same locally');
  await ok(t, run('cmp', [expected, target]), 'the grown part is zeros');
});

t.test('echo >> appends', async (t) => {
  const target = join(B, 'append.txt');
  let wanted = '';
  for (let i = 0; i < 20; i++) {
    await ok(t, sh('echo "line $2" >> "$1"', [target, String(i)]), `append ${i}`);
    wanted += `line ${i}\n`;
  }
  t.equal(readFileSync(target, 'utf8'), wanted, 'every line, in order');

  // Appends that cross chunk boundaries of a multi-chunk file.
  const big = join(B, 'append.bin');
  const expected = join(local, 'append-expected');
  writeFileSync(expected, randomBytes(MiB - 3));
  copyFileSync(expected, join(local, 'append-base'));
  await ok(t, run('cp', [join(local, 'append-base'), big]), 'cp a file one chunk long, less 3 bytes');
  for (let i = 0; i < 5; i++) {
    writeFileSync(join(local, 'append-piece'), randomBytes(400_000 + i));
    await ok(t, sh('cat "$1" >> "$2"', [join(local, 'append-piece'), big]), `append piece ${i} on the mount`);
    await ok(t, sh('cat "$1" >> "$2"', [join(local, 'append-piece'), expected]), `append piece ${i} locally`);
  }
  await ok(t, run('cmp', [expected, big]), 'the appended file matches');
});

t.test('after a remount (no page cache, no chunk cache) the rewritten files are the same', async (t) => {
  await m.stop();
  const again = await m.remount();
  const pairs: Array<[string, string]> = [
    [join(local, 'dd-expected-files'), join(again.dir, 'files', 'dd.bin')],
    [join(local, 'dd-expected-vault'), join(again.dir, 'vault', 'dd.bin')],
    [join(local, 'trunc-expected'), join(again.dir, 'files', 'trunc.bin')],
    [join(local, 'append-expected'), join(again.dir, 'files', 'append.bin')],
    [join(local, 'mv-one'), join(again.dir, 'vault', 'two')],
  ];
  for (const [expected, actual] of pairs) await ok(t, run('cmp', [expected, actual]), `cmp ${actual}`);
  t.equal(readFileSync(join(again.dir, 'files', 'append.txt'), 'utf8').split('\n').length, 21, 'append.txt lines');
  t.equal(readFileSync(join(again.dir, 'vault', 'moved', 'y'), 'utf8'), 'y\n', 'moved directory');
});
