import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';

const home = mkdtempSync(join(tmpdir(), 'lilio-master-key-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const keyFile = join(home, 'master.key');
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const lilio = (args: string[], input?: Buffer, extra: NodeJS.ProcessEnv = {}) =>
  runCli(args, { ...env, ...extra }, input);

t.test('a lost master key is an error while encrypted buckets exist, never silently replaced', async (t) => {
  t.equal((await lilio(['bucket', 'create', 'plain'])).code, 0);
  t.notOk(existsSync(keyFile), 'an unencrypted bucket needs no key');
  const created = await lilio(['bucket', 'create', 'secret', '--encrypt']);
  t.equal(created.code, 0, created.stderr);
  const key = readFileSync(keyFile, 'utf8').trim();
  t.equal((await lilio(['put', '-', 'secret/a.txt'], Buffer.from('classified'))).code, 0);

  rmSync(keyFile);
  const read = await lilio(['get', 'secret/a.txt', '-']);
  t.equal(read.code, 1);
  t.match(read.stderr, `master key file ${keyFile} is missing`);
  t.match(read.stderr, /LILIO_MASTER_KEY/);
  t.notOk(existsSync(keyFile), 'reading does not generate a key');
  const another = await lilio(['bucket', 'create', 'another', '--encrypt']);
  t.equal(another.code, 1, 'nor does creating another encrypted bucket');
  t.match(another.stderr, `master key file ${keyFile} is missing`);
  t.notOk(existsSync(keyFile));
  t.equal((await lilio(['get', 'plain/none', '-'])).stderr, 'lilio: object "plain/none" does not exist\n');

  const restored = await lilio(['get', 'secret/a.txt', '-'], undefined, { LILIO_MASTER_KEY: key });
  t.equal(restored.code, 0, restored.stderr);
  t.equal(restored.stdout.toString(), 'classified', 'the original key (here from the environment) still opens it');

  // Once no bucket is encrypted, a missing key is simply a fresh start.
  t.equal((await lilio(['rm', 'secret/a.txt'], undefined, { LILIO_MASTER_KEY: key })).code, 0);
  t.equal((await lilio(['bucket', 'rm', 'secret'])).code, 0);
  const fresh = await lilio(['bucket', 'create', 'fresh', '--encrypt']);
  t.equal(fresh.code, 0, fresh.stderr);
  t.ok(existsSync(keyFile), 'a new key is generated');
  t.not(readFileSync(keyFile, 'utf8').trim(), key);
});
