import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import { Lilio } from '../../src/engine/lilio.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { builtChildEnv } from '../fixtures/child-env.js';
import { killedUploadConfig } from '../fixtures/upload-config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a process killed mid-upload: its half part goes with its session, the upload with expiry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-upload-killed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = killedUploadConfig(dir);
  const lilio = await Lilio.open(config, { meta: LocalMetadataStore.open({ path: join(dir, 'meta') }) });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const { id } = await lilio.uploads.create('bkt', 'k');
  const stored = async () => {
    const ids = new Set<string>();
    for (const name of lilio.backends.names)
      for await (const chunk of lilio.backends.backend(name)!.list()) ids.add(chunk);
    return ids;
  };

  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fixtures/upload-killed.ts'), dir, id], {
    cwd: ROOT,
    env: builtChildEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once('exit', (_code, signal) => resolve(signal)),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (piece) => {
      out += piece;
      if (out.includes('streaming\n')) resolve();
    });
    child.once('exit', () => reject(new Error(`the uploader exited early: ${out}`)));
  });
  child.kill('SIGKILL');
  t.equal(await exited, 'SIGKILL');

  const [part] = (await lilio.uploads.listParts(id)).parts;
  t.match(part, { partNumber: 1, size: 3 * 65536 }, 'part 1 was recorded');
  const partOne = (await lilio.meta.listParts(id)).parts[0]!.chunks.map((c) => c.id);
  const all = await stored();
  t.equal(all.size, 5, "part 1's three chunks and half of part 2's");

  // The killed process's session runs out (ttl 1 s); then what it was writing is garbage.
  while ((await lilio.meta.listSessions()).some((s) => s.role === 'upload-killed')) await sleep(100);
  const gc = await lilio.collectGarbage({ graceMs: 0 });
  t.equal(gc.deleted, 2, 'the half-written part 2 is collected');
  t.equal(gc.uploadsExpired, 0, 'the upload is not expired yet');
  t.equal((await collectOrphans(lilio, { graceMs: 0 })).orphans, 0, 'the orphan scan sees part 1 as referenced');
  t.same([...(await stored())].sort(), [...partOne].sort(), 'part 1 stays for a client that resumes');

  const upload = await lilio.uploads.get(id);
  await sleep(Math.max(0, upload.touchedAt + config.uploads.expireAfterSeconds * 1000 + 200 - Date.now()));
  const expired = await lilio.collectGarbage({ graceMs: 0 });
  t.equal(expired.uploadsExpired, 1, 'untouched past uploads.expireAfterSeconds, gc aborts it');
  t.equal(expired.deleted, 3, "and collects part 1's chunks");
  t.equal((await stored()).size, 0, 'nothing is left on the backends');
  await t.rejects(lilio.uploads.listParts(id), { code: 'NO_SUCH_UPLOAD' });
});
