import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { isMounted, localDir, type MountedLilio, ok, run, sleep, startMount } from '../fixtures/mount.js';

// Mount lifecycle. A mount that goes away (SIGTERM, `lilio umount`, unmounted from outside) commits
// the files whose writers closed them and leaves a file still open for writing at its last
// committed version, as a crash would: never its half-written prefix. `lilio umount` refuses while
// such writers exist unless --force or --lazy. A SIGKILLed mount's stale directory is taken over by
// the next mount; a live mount is never mounted over, and a detached one never unmounts a newer one.

const MiB = 1024 * 1024;

/**
 * A process that opens `path` (r+: the old content stays until overwritten), writes `pieces`
 * pieces of `piece` bytes from `source` (one per `pauseMs`), says "wrote N" after each, and
 * then, unless `close`, keeps the descriptor open until killed.
 */
function writer(
  t: Test,
  path: string,
  source: string,
  opts: { piece: number; pieces: number; pauseMs: number; close: boolean },
): { child: ChildProcess; lines: AsyncIterator<string>; exited: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs');
       const [path, source, piece, pieces, pause, close] = process.argv.slice(1);
       const data = fs.readFileSync(source);
       const fd = fs.openSync(path, 'r+');
       let i = 0;
       const step = () => {
         if (i === Number(pieces)) {
           if (close === 'yes') { fs.closeSync(fd); process.stdout.write('closed\\n'); process.exit(0); }
           setInterval(() => {}, 1000);
           return;
         }
         fs.writeSync(fd, data, i * Number(piece), Number(piece), i * Number(piece));
         i++;
         process.stdout.write('wrote ' + i + '\\n');
         setTimeout(step, Number(pause));
       };
       step();`,
      path,
      source,
      String(opts.piece),
      String(opts.pieces),
      String(opts.pauseMs),
      opts.close ? 'yes' : 'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), exited };
}

async function until(lines: AsyncIterator<string>, want: string): Promise<void> {
  for (;;) {
    const next = await lines.next();
    if (next.done) throw new Error(`the writer ended before "${want}"`);
    if (next.value === want) return;
  }
}

/** A bucket with `name` holding `size` random bytes through the mount; returns the local copy's path. */
async function oldVersion(t: Test, m: MountedLilio, name: string, size: number): Promise<string> {
  const local = localDir(t);
  const copy = join(local, `${name}.old`);
  writeFileSync(copy, randomBytes(size));
  await ok(t, run('mkdir', ['-p', join(m.dir, 'life')]), 'mkdir');
  await ok(t, run('cp', [copy, join(m.dir, 'life', name)]), 'the old version');
  return copy;
}

t.test('lilio umount: the process exits 0 and the file is there after a remount', async (t) => {
  const local = localDir(t);
  writeFileSync(join(local, 'f.bin'), randomBytes(2 * MiB + 9));
  const m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'life')]), 'mkdir');
  await ok(t, run('cp', [join(local, 'f.bin'), join(m.dir, 'life', 'f.bin')]), 'cp');
  const umount = await m.cli(['umount', m.dir]);
  t.equal(umount.code, 0, 'lilio umount succeeds', { stderr: umount.stderr });
  t.match(umount.stdout.toString(), /unmounted/);
  t.same(await m.exited, { code: 0, signal: null }, 'the mount process exited 0');
  t.notOk(isMounted(m.dir), 'the directory is no longer mounted');
  t.match(m.stderr(), /lilio umount: committing closed files and unmounting/, 'it said what it did');

  const again = await m.remount();
  await ok(t, run('cmp', [join(local, 'f.bin'), join(again.dir, 'life', 'f.bin')]), 'the file reads back');
});

t.test('lilio umount refuses while a file is open for writing; --force leaves it at its last version', async (t) => {
  const m = await startMount(t);
  const old = await oldVersion(t, m, 'open.bin', 3 * MiB + 1);
  const fresh = join(localDir(t), 'new.bin');
  writeFileSync(fresh, randomBytes(3 * MiB + 1));
  const w = writer(t, join(m.dir, 'life', 'open.bin'), fresh, { piece: MiB, pieces: 2, pauseMs: 0, close: false });
  await until(w.lines, 'wrote 2');

  const refused = await m.cli(['umount', m.dir]);
  t.equal(refused.code, 1, 'lilio umount fails');
  t.match(refused.stderr, /^lilio: \S+ is busy: 1 file\(s\) open for writing \(life\/open\.bin\);.*--force.*--lazy/);
  t.equal(refused.stderr.trim().split('\n').length, 1, 'in one line');
  t.ok(isMounted(m.dir), 'still mounted');
  await ok(t, run('ls', [join(m.dir, 'life')]), 'and still serving');

  const forced = await m.cli(['umount', '--force', m.dir]);
  t.equal(forced.code, 0, 'lilio umount --force succeeds', { stderr: forced.stderr });
  t.same(await m.exited, { code: 0, signal: null }, 'the mount process exited 0');
  t.notOk(isMounted(m.dir), 'the directory is no longer mounted');
  t.match(m.stderr(), /left life\/open\.bin at its last committed version/, 'the log names the file left');
  w.child.kill('SIGKILL');

  const again = await m.remount();
  await ok(t, run('cmp', [old, join(again.dir, 'life', 'open.bin')]), 'the old version, byte for byte');
});

t.test('lilio umount --lazy detaches at once and commits the open file when its writer closes', async (t) => {
  const m = await startMount(t);
  await oldVersion(t, m, 'lazy.bin', 2 * MiB);
  const fresh = join(localDir(t), 'new.bin');
  writeFileSync(fresh, randomBytes(4 * MiB));
  const w = writer(t, join(m.dir, 'life', 'lazy.bin'), fresh, { piece: MiB, pieces: 4, pauseMs: 700, close: true });
  await until(w.lines, 'wrote 1');

  const lazy = await m.cli(['umount', '--lazy', m.dir]);
  t.equal(lazy.code, 0, 'lilio umount --lazy succeeds', { stderr: lazy.stderr });
  t.notOk(isMounted(m.dir), 'detached at once');
  await until(w.lines, 'closed');
  t.equal(await w.exited, 0, 'the writer finished through the detached mount');
  t.same(await m.exited, { code: 0, signal: null }, 'then the mount process exited 0');

  const again = await m.remount();
  await ok(t, run('cmp', [fresh, join(again.dir, 'life', 'lazy.bin')]), 'the new version, whole');
});

t.test('SIGTERM during a slow large write leaves the old version intact', async (t) => {
  const m = await startMount(t);
  const SIZE = 64 * MiB;
  const old = await oldVersion(t, m, 'big.bin', SIZE);
  const fresh = join(localDir(t), 'new.bin');
  writeFileSync(fresh, randomBytes(SIZE));
  const w = writer(t, join(m.dir, 'life', 'big.bin'), fresh, { piece: MiB, pieces: 64, pauseMs: 50, close: true });
  await until(w.lines, 'wrote 16');

  await m.stop();
  t.same(await m.exited, { code: 0, signal: null }, 'the mount process exited 0');
  t.notOk(isMounted(m.dir), 'unmounted');
  t.match(m.stderr(), /left life\/big\.bin at its last committed version/, 'the log names the file left');
  t.not(await w.exited, 0, 'the writer was told its writes failed');

  const again = await m.remount();
  await ok(t, run('cmp', [old, join(again.dir, 'life', 'big.bin')]), 'the old version, byte for byte');
});

t.test('fusermount -u from outside: the mount process exits 0 without a stack trace', async (t) => {
  const m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'life')]), 'mkdir');
  await ok(t, run('fusermount', ['-u', m.dir]), 'fusermount -u');
  t.same(await m.exited, { code: 0, signal: null }, 'the mount process exited 0');
  t.match(m.stderr(), /unmounted from outside/);
  t.notMatch(m.stderr(), /\n\s+at |Unhandled|Error:/, 'no stack trace, no unhandled error');
});

t.test('a detached mount process, when stopped, does not unmount a newer mount at the same path', async (t) => {
  const first = await startMount(t);
  await ok(t, run('mkdir', [join(first.dir, 'life')]), 'mkdir');
  await ok(t, run('sh', ['-c', 'echo one > "$1"', 'sh', join(first.dir, 'life', 'one.txt')]), 'a file');
  // A reader keeps the first mount serving after it is detached from outside.
  const holder = spawn('sh', ['-c', 'exec sleep 300 < "$1"', 'sh', join(first.dir, 'life', 'one.txt')], {
    stdio: 'ignore',
  });
  await sleep(500);
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  await ok(t, run('fusermount', ['-uz', first.dir]), 'detached lazily from outside');
  t.notOk(isMounted(first.dir), 'the path is free');

  const second = await startMount(t, { dir: first.dir });
  await ok(t, run('mkdir', [join(second.dir, 'other')]), 'the newer mount works');
  await sleep(1_500);
  t.match(first.stderr(), /unmounted from outside: detached \S+; serving 1 open file\(s\) until they close/);
  process.kill(first.pid, 'SIGTERM');
  t.same(await first.exited, { code: 0, signal: null }, 'the first process exited 0');
  await sleep(500);
  t.ok(isMounted(second.dir), 'the newer mount is still mounted');
  const ls = await ok(t, run('ls', [second.dir]), 'and answers');
  t.match(ls.stdout, /other/);
});

t.test('a SIGKILLed mount leaves a stale directory that the next mount replaces', async (t) => {
  const m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'life')]), 'mkdir');
  await ok(t, run('sh', ['-c', 'echo before the crash > "$1"', 'sh', join(m.dir, 'life', 'note.txt')]), 'a file');
  await m.kill9();
  t.ok(isMounted(m.dir), 'the dead mount is still listed');
  const stale = await run('ls', [m.dir]);
  t.not(stale.code, 0, 'and answers nothing');
  t.match(stale.stderr, /Transport endpoint is not connected/);

  const again = await m.remount();
  t.ok(isMounted(again.dir), 'mounted again on the same directory');
  const cat = await ok(t, run('cat', [join(again.dir, 'life', 'note.txt')]), 'cat');
  t.equal(cat.stdout, 'before the crash\n', 'the committed file survived');
  await ok(t, run('sh', ['-c', 'echo after > "$1"', 'sh', join(again.dir, 'life', 'new.txt')]), 'and it takes writes');
});

t.test('a directory with a live mount is not mounted over', async (t) => {
  const m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'life')]), 'mkdir');
  await t.rejects(startMount(t, { dir: m.dir }), /already mounted/, 'the second mount refuses');
  const ls = await ok(t, run('ls', [m.dir]), 'the first mount still answers');
  t.equal(ls.stdout, 'life\n');
});
