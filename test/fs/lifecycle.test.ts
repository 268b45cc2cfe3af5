import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { isMounted, localDir, ok, run, startMount } from '../fixtures/mount.js';

// Mount lifecycle: `lilio umount` flushes and exits cleanly, a SIGKILLed mount's stale
// directory is taken over by the next mount, a live mount is never mounted over.

const MiB = 1024 * 1024;

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
  t.match(m.stderr(), /flushing and unmounting/, 'it said what it did');

  const again = await m.remount();
  await ok(t, run('cmp', [join(local, 'f.bin'), join(again.dir, 'life', 'f.bin')]), 'the file reads back');
});

t.test('lilio umount commits what an open file holds before it goes', async (t) => {
  const local = localDir(t);
  const data = randomBytes(3 * MiB + 1);
  writeFileSync(join(local, 'f.bin'), data);
  const m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'life')]), 'mkdir');
  const target = join(m.dir, 'life', 'open.bin');
  // A writer that writes everything and then keeps its descriptor open, so only unmount can commit it.
  const writer = spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs');
       const fd = fs.openSync(process.argv[1], 'w');
       fs.writeSync(fd, fs.readFileSync(process.argv[2]));
       process.stdout.write('written\\n');
       setInterval(() => {}, 1000);`,
      target,
      join(local, 'f.bin'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    writer.kill('SIGKILL');
  });
  const lines = createInterface({ input: writer.stdout })[Symbol.asyncIterator]();
  t.equal((await lines.next()).value, 'written', 'the writer wrote and holds the file open');

  const umount = await m.cli(['umount', m.dir]);
  t.equal(umount.code, 0, 'lilio umount succeeds with the file still open', { stderr: umount.stderr });
  t.same(await m.exited, { code: 0, signal: null }, 'the mount process exited 0');
  t.notOk(isMounted(m.dir), 'the directory is no longer mounted');
  writer.kill('SIGKILL');

  const again = await m.remount();
  t.equal((await stat(join(again.dir, 'life', 'open.bin'))).size, data.length, 'the whole file was committed');
  await ok(t, run('cmp', [join(local, 'f.bin'), join(again.dir, 'life', 'open.bin')]), 'byte for byte');
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
