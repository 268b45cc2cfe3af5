import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localDir, ok, run, sleep, startMount } from '../fixtures/mount.js';

// SIGKILL the mount in the middle of a large cp over an existing file: after a remount the file
// is the old version or the new one, never a mix.

const MiB = 1024 * 1024;

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: MiB })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

t.test('a cp killed with the mount leaves the old or the new version, never a torn one', async (t) => {
  const local = localDir(t);
  const oldData = randomBytes(30 * MiB + 5);
  const newData = randomBytes(200 * MiB + 7);
  const oldFile = join(local, 'old.bin');
  const newFile = join(local, 'new.bin');
  writeFileSync(oldFile, oldData);
  writeFileSync(newFile, newData);
  const versions = new Map([
    [createHash('sha256').update(oldData).digest('hex'), 'old'],
    [createHash('sha256').update(newData).digest('hex'), 'new'],
  ]);

  let m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'crash')]), 'a bucket');
  const target = join(m.dir, 'crash', 'big.bin');
  let killedMidCopy = 0;
  for (const delay of [100, 300, 600]) {
    await ok(t, run('cp', [oldFile, target]), `round ${delay} ms: cp the old version`);
    const cp = spawn('cp', [newFile, target], { stdio: 'ignore' });
    let cpDone = false;
    const cpExit = new Promise<number | null>((resolve) =>
      cp.once('exit', (code) => {
        cpDone = true;
        resolve(code);
      }),
    );
    await sleep(delay);
    const midCopy = !cpDone;
    await m.kill9();
    cp.kill('SIGKILL');
    const code = await cpExit;
    if (midCopy) killedMidCopy++;
    t.comment(`round ${delay} ms: the mount died ${midCopy ? 'during' : 'after'} the copy (cp exit ${code})`);

    m = await m.remount();
    const found = versions.get(await sha256Of(target));
    t.ok(found, `round ${delay} ms: the file is one whole version (${found ?? 'TORN'})`);
    if (!midCopy) t.equal(found, 'new', 'a finished cp left the new version');
    const ls = await ok(t, run('ls', ['-l', join(m.dir, 'crash')]), 'the remounted directory lists');
    t.match(ls.stdout, /big\.bin/, 'with the file');
  }
  t.ok(killedMidCopy >= 1, `at least one round killed the mount during the copy (${killedMidCopy})`);
});
