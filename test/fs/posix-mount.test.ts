import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type MountedLilio, ok, run, sh, sleep, startMount, type ToolResult, testFuse } from '../fixtures/mount.js';

// POSIX through a real mount, with the tools: owners and permissions as a second user (nobody, via
// setpriv), mkfifo / mknod / bind(2), ctime, directory times, long paths, and a vim-style save
// racing open(). Our own session (the default) is the one that knows the caller; what needs it
// is skipped on fuse-native (LILIO_TEST_FUSE=libfuse). Real mounts as root; the fixture unmounts in teardown.

const native = testFuse === 'native';
/** Skips a test on fuse-native, saying why. */
const nativeOnly = (why: string): string | false =>
  native ? false : `${why} on fuse-native (LILIO_TEST_FUSE=libfuse)`;
const isRoot = process.getuid?.() === 0;

let m: MountedLilio;
let B: string;

t.before(async () => {
  m = await startMount(t, { args: ['--allow-other'] });
  B = join(m.dir, 'posix');
  await ok(t, run('mkdir', [B]), 'mkdir a bucket');
  await ok(t, run('chmod', ['1777', B]), 'a sticky world-writable bucket, like /tmp');
});

/** Runs a shell script as nobody:nogroup with no supplementary groups. */
function asNobody(script: string, args: string[] = []): Promise<ToolResult> {
  return run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sh', '-c', script, 'sh', ...args]);
}

async function statOf(path: string, format: string): Promise<string> {
  return (await run('stat', ['-c', format, path])).stdout.trim();
}

/** A time as `stat -c %.9X/%.9Y/%.9Z` prints it, in nanoseconds since the epoch. */
async function nanos(path: string, format: 'X' | 'Y' | 'Z'): Promise<bigint> {
  return BigInt((await statOf(path, `%.9${format}`)).replace('.', ''));
}

t.test(
  'owners come from the caller; modes deny and allow a second user',
  { skip: nativeOnly('the caller of a request is not known') || (!isRoot && 'needs root') },
  async (t) => {
    const d = join(B, 'owners');
    await ok(t, run('mkdir', [d]), 'mkdir');
    await ok(t, run('chmod', ['777', d]), 'chmod 777');
    const made = await asNobody('echo mine > "$1/mine" && mkdir "$1/sub" && ln -s mine "$1/link" && mkfifo "$1/pipe"', [
      d,
    ]);
    t.equal(made.code, 0, 'nobody creates a file, a directory, a symlink and a fifo', { stderr: made.stderr });
    for (const name of ['mine', 'sub', 'link', 'pipe']) {
      t.equal(await statOf(join(d, name), '%U:%G'), 'nobody:nogroup', `${name} belongs to nobody`);
    }
    writeFileSync(join(d, 'secret'), 'root only');
    await ok(t, run('chmod', ['600', join(d, 'secret')]), 'chmod 600');
    writeFileSync(join(d, 'shared'), 'everyone reads');
    await ok(t, run('chmod', ['644', join(d, 'shared')]), 'chmod 644');

    const read = await asNobody('cat "$1"', [join(d, 'secret')]);
    t.not(read.code, 0, 'nobody cannot read a 0600 file of root');
    t.match(read.stderr, /Permission denied/);
    t.equal((await asNobody('test -r "$1" && echo yes || echo no', [join(d, 'secret')])).stdout, 'no\n', 'test -r');
    t.equal((await asNobody('cat "$1"', [join(d, 'shared')])).stdout, 'everyone reads', 'but reads a 0644 one');
    const write = await asNobody('echo more >> "$1"', [join(d, 'shared')]);
    t.match(write.stderr, /Permission denied/, 'and cannot write it');
    t.equal(readFileSync(join(d, 'shared'), 'utf8'), 'everyone reads', 'unchanged');
    await ok(t, run('chmod', ['666', join(d, 'shared')]), 'chmod 666');
    t.equal((await asNobody('echo more >> "$1"', [join(d, 'shared')])).code, 0, 'now it can');
    t.equal(readFileSync(join(d, 'shared'), 'utf8'), 'everyone readsmore\n');

    const giveAway = await asNobody('chown root "$1"', [join(d, 'mine')]);
    t.match(giveAway.stderr, /Operation not permitted/, 'only root gives a file away');
    t.equal(await statOf(join(d, 'mine'), '%u'), '65534');
    await ok(t, run('chown', ['1234:4321', join(d, 'mine')]), 'root chowns');
    t.equal(await statOf(join(d, 'mine'), '%u:%g'), '1234:4321', 'chown is stored');

    const sgid = join(B, 'setgid');
    await ok(t, run('mkdir', [sgid]), 'mkdir');
    await ok(t, run('chown', [':4321', sgid]), 'chgrp');
    await ok(t, run('chmod', ['2777', sgid]), 'chmod g+s');
    t.equal((await asNobody('touch "$1/f" && mkdir "$1/d"', [sgid])).code, 0, 'nobody creates in it');
    t.equal(await statOf(join(sgid, 'f'), '%U:%g'), 'nobody:4321', 'a setgid directory gives its group');
    t.equal(await statOf(join(sgid, 'd'), '%g %A'), '4321 drwxr-sr-x', 'and its setgid bit to subdirectories');
    t.equal((await asNobody('rm "$1/f"', [sgid])).code, 0, 'nobody removes its own file');
  },
);

t.test(
  'a write by another user and chown clear setuid/setgid',
  { skip: nativeOnly('the caller of a request is not known') || (!isRoot && 'needs root') },
  async (t) => {
    const f = join(B, 'suid');
    writeFileSync(f, '#!/bin/sh\n');
    await ok(t, run('chmod', ['6777', f]), 'chmod 6777');
    t.equal(await statOf(f, '%a'), '6777');
    t.equal((await asNobody('echo more >> "$1"', [f])).code, 0, 'nobody writes');
    t.equal(await statOf(f, '%a'), '777', 'the write cleared setuid and setgid');
    await ok(t, run('chmod', ['6755', f]), 'chmod 6755');
    await ok(t, run('chown', ['1234', f]), 'chown');
    t.equal(await statOf(f, '%a'), '755', 'chown cleared them too');
  },
);

t.test('mkfifo, mknod and a unix socket: ls -l and stat show their types', async (t) => {
  const d = join(B, 'nodes');
  await ok(t, run('mkdir', [d]), 'mkdir');
  await ok(t, run('mkfifo', [join(d, 'fifo')]), 'mkfifo');
  if (isRoot) {
    await ok(t, run('mknod', [join(d, 'null'), 'c', '1', '3']), 'mknod c');
    await ok(t, run('mknod', [join(d, 'loop'), 'b', '7', '0']), 'mknod b');
  }
  await ok(
    t,
    run('python3', ['-c', 'import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])', join(d, 'sock')]),
    'bind(2) of a unix socket',
  );
  t.equal(await statOf(join(d, 'fifo'), '%F'), 'fifo');
  t.equal(await statOf(join(d, 'sock'), '%F'), 'socket');
  if (isRoot) {
    t.equal(await statOf(join(d, 'null'), '%F %t:%T'), 'character special file 1:3');
    t.equal(await statOf(join(d, 'loop'), '%F %t:%T'), 'block special file 7:0');
  }
  const ls = (await ok(t, run('ls', ['-l', d]), 'ls -l')).stdout;
  t.match(ls, /\np\S+ 1 .* fifo\n/);
  t.match(ls, /\ns\S+ 1 .* sock\n/);
  if (isRoot) t.match(ls, /\nc\S+ 1 .* 1, +3 .* null\n/);

  // The CLI lists them through the store with their type letters (it is not the mount).
  const cli = await m.cli(['ls', '-l', 'posix/nodes/']);
  t.equal(cli.code, 0, 'lilio ls -l', { stderr: cli.stderr });
  t.match(cli.stdout, /^prw\S+ +0 .*fifo$/m);
  t.match(cli.stdout, /^srwx\S+ +0 .*sock$/m);
  if (isRoot) t.match(cli.stdout, /^crw\S+ +0 .*null$/m);
  const cliStat = await m.cli(['stat', 'posix/nodes/fifo']);
  t.match(cliStat.stdout, /prw-r--r--/, 'lilio stat shows the type');

  // The kernel serves the fifo itself: data passes between two processes through the mount.
  const through = await sh('cat "$1" > "$2.out" & echo through the fifo > "$1"; wait; cat "$2.out"; rm "$2.out"', [
    join(d, 'fifo'),
    join(B, 'fifo-read'),
  ]);
  t.equal(through.stdout, 'through the fifo\n', 'a fifo on the mount carries data');
  await ok(t, run('mv', [join(d, 'fifo'), join(d, 'fifo2')]), 'mv a fifo');
  t.equal(await statOf(join(d, 'fifo2'), '%F'), 'fifo', 'still a fifo');
  await ok(t, run('rm', ['-r', d]), 'rm -r');
});

t.test('ctime moves with chmod, chown, mv, truncate, a write and setfattr; mtime only with data', async (t) => {
  const f = join(B, 'ctime');
  writeFileSync(f, 'hello');
  const steps: [string, string[], boolean][] = [
    ['chmod', ['chmod', '600', f], false],
    ['chown', ['chown', `${process.getuid?.() ?? 0}:4321`, f], false],
    ['mv', ['mv', f, `${f}2`], false],
    ['truncate', ['truncate', '-s', '2', `${f}2`], true],
    ['write', ['sh', '-c', 'echo more >> "$1"', 'sh', `${f}2`], true],
    ['setfattr', ['setfattr', '-n', 'user.k', '-v', 'v', `${f}2`], false],
  ];
  let path = f;
  for (const [name, [cmd, ...args], dataChange] of steps) {
    const ctime = await nanos(path, 'Z');
    const mtime = await nanos(path, 'Y');
    await sleep(20);
    await ok(t, run(cmd!, args), name);
    if (name === 'mv') path = `${f}2`;
    t.ok((await nanos(path, 'Z')) > ctime, `${name} moves ctime`);
    if (dataChange) t.ok((await nanos(path, 'Y')) > mtime, `${name} moves mtime`);
    else t.equal(await nanos(path, 'Y'), mtime, `${name} leaves mtime`);
  }
});

t.test("a directory's mtime and ctime move when entries come and go", async (t) => {
  const d = join(B, 'dirtimes');
  const other = join(B, 'dirtimes-other');
  await ok(t, run('mkdir', [d, other]), 'mkdir');
  const steps: [string, string[], string[]][] = [
    ['touch', ['touch', join(d, 'f')], [d]],
    ['mkdir', ['mkdir', join(d, 'sub')], [d]],
    ['mv across', ['mv', join(d, 'f'), join(other, 'f')], [d, other]],
    ['rm', ['rm', join(other, 'f')], [other]],
    ['rmdir', ['rmdir', join(d, 'sub')], [d]],
  ];
  for (const [name, [cmd, ...args], dirs] of steps) {
    const before = await Promise.all(dirs.map(async (dir) => [await nanos(dir, 'Y'), await nanos(dir, 'Z')]));
    await sleep(20);
    await ok(t, run(cmd!, args), name);
    for (const [i, dir] of dirs.entries()) {
      t.ok((await nanos(dir, 'Y')) > before[i]![0]!, `${name}: mtime of ${dir.slice(B.length)}`);
      t.ok((await nanos(dir, 'Z')) > before[i]![1]!, `${name}: ctime of ${dir.slice(B.length)}`);
    }
  }
  await ok(t, run('touch', ['-d', '2020-01-02 03:04:05', d]), 'touch -d on the directory');
  t.equal(await statOf(d, '%Y'), String(Date.UTC(2020, 0, 2, 3, 4, 5) / 1000), 'shows what was set');
});

t.test(
  'touch -a and touch -m each change only their own time',
  { skip: nativeOnly('libfuse 2 sets both times') },
  async (t) => {
    const f = join(B, 'touched');
    writeFileSync(f, 'x');
    await ok(t, run('touch', ['-m', '-d', '2020-01-02 03:04:05', f]), 'touch -m');
    await ok(t, run('touch', ['-a', '-d', '2021-05-06 07:08:09', f]), 'touch -a');
    t.equal(
      await statOf(f, '%X %Y'),
      `${Date.UTC(2021, 4, 6, 7, 8, 9) / 1000} ${Date.UTC(2020, 0, 2, 3, 4, 5) / 1000}`,
    );
    await ok(t, run('touch', ['-a', f]), 'touch -a (now)');
    t.equal(await statOf(f, '%Y'), String(Date.UTC(2020, 0, 2, 3, 4, 5) / 1000), 'mtime stays');
  },
);

t.test('paths past 1,024 bytes inside a bucket: ENAMETOOLONG, and a line in the log', async (t) => {
  const deep = join(B, ...Array.from({ length: 5 }, (_, i) => `${String(i).repeat(200)}`));
  await ok(t, run('mkdir', ['-p', deep]), 'mkdir -p of 1,005 bytes inside the bucket');
  const tooLong = await run('touch', [join(deep, 'x'.repeat(30))]);
  t.not(tooLong.code, 0, 'refused');
  t.match(tooLong.stderr, /File name too long/);
  t.match(m.stderr(), /mount: .*at most 1024 bytes \(S3's limit\); this one is 1035/, 'the log says why');
  await ok(t, run('rm', ['-r', join(B, '0'.repeat(200))]), 'rm -r');
});

t.test(
  'open() polling while another thread saves vim-style: never ENOENT',
  { skip: nativeOnly('open() still sees ENOENT (libfuse 2 path layer)') },
  async (t) => {
    const f = join(B, 'edited.txt');
    writeFileSync(f, 'version 0\n');
    // One process, two threads: the saver writes a temporary file and renames it over the name
    // (as vim and most editors do); the poller opens the name in a loop.
    const script = `
import os, sys, threading
path = sys.argv[1]
done = threading.Event()
errors = []
opens = [0]
def save():
    for i in range(150):
        tmp = path + '.swp'
        with open(tmp, 'w') as out:
            out.write('version %d\\n' % i)
        os.rename(tmp, path)
    done.set()
def poll():
    while not done.is_set():
        try:
            with open(path) as inp:
                inp.read()
            opens[0] += 1
        except OSError as e:
            errors.append(e.errno)
threads = [threading.Thread(target=save), threading.Thread(target=poll)]
for th in threads: th.start()
for th in threads: th.join()
print(opens[0], len(errors), sorted(set(errors)))
`;
    const result = await ok(t, run('python3', ['-c', script, f], { timeoutMs: 120_000 }), 'python3 saver + poller');
    const [opens, failures] = result.stdout.trim().split(' ');
    t.ok(Number(opens) > 0, `${opens} opens succeeded`);
    t.equal(failures, '0', `no open failed: ${result.stdout.trim()}`);
  },
);
