import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';
import { startEtcd } from '../fixtures/etcd.js';
import { freePort } from '../fixtures/mount.js';

// The CLI on etcd: --metadata etcd with endpoints from the flag or LILIO_ETCD_ENDPOINTS.

const etcd = await startEtcd(t);
const home = mkdtempSync(join(tmpdir(), 'lilio-cli-etcd-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: randomBytes(32).toString('base64') };
const endpoints = etcd.endpoints.join(',');

t.test('buckets and objects through --metadata etcd', async (t) => {
  const create = await runCli(['--metadata', 'etcd', '--etcd-endpoints', endpoints, 'bucket', 'create', 'photos'], env);
  t.equal(create.code, 0, 'bucket create', { stderr: create.stderr });
  const file = join(home, 'in.bin');
  const data = randomBytes(2 * 1024 * 1024 + 3);
  writeFileSync(file, data);
  const viaEnv = { ...env, LILIO_ETCD_ENDPOINTS: endpoints };
  const put = await runCli(['put', file, 'photos/a/b.bin', '--metadata', 'etcd'], viaEnv);
  t.equal(put.code, 0, 'put, endpoints from LILIO_ETCD_ENDPOINTS', { stderr: put.stderr });
  const out = join(home, 'out.bin');
  const get = await runCli(['--metadata', 'etcd', 'get', 'photos/a/b.bin', out], viaEnv);
  t.equal(get.code, 0, 'get', { stderr: get.stderr });
  t.ok(readFileSync(out).equals(data), 'the bytes round-trip');
  const ls = await runCli(['--metadata', 'etcd', 'ls', 'photos/a/'], viaEnv);
  t.match(ls.stdout.toString(), /a\/b\.bin/);
  const local = await runCli(['bucket', 'ls'], env);
  t.equal(local.code, 0);
  t.notMatch(local.stdout.toString(), /photos/, 'without the flag the embedded SQLite store is used');
});

t.test('an unreachable etcd is one clear error line, in bounded time', async (t) => {
  const port = await freePort();
  const config = join(home, 'unreachable.json');
  writeFileSync(
    config,
    JSON.stringify({
      metadata: { type: 'etcd', etcd: { endpoints: [`127.0.0.1:${port}`], requestTimeoutMs: 1_000 } },
      storages: [{ name: 'one', type: 'local', path: join(home, 'one') }],
      quorum: { n: 1, w: 1, r: 1 },
    }),
  );
  const started = Date.now();
  const ls = await runCli(['--config', config, 'bucket', 'ls'], env);
  t.equal(ls.code, 1, 'exit status 1');
  t.match(ls.stderr, new RegExp(`^lilio: etcd \\(http://127\\.0\\.0\\.1:${port}\\) is unavailable`));
  t.equal(ls.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  t.ok(Date.now() - started < 20_000, 'and it did not hang');
  const usage = await runCli(['--metadata', 'etcd', 'bucket', 'ls'], env);
  t.equal(usage.code, 1);
  t.match(usage.stderr, /--metadata etcd needs endpoints/);
});
