import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';
import { startFakeDrive } from '../fixtures/fake-drive.js';
import { freePort } from '../fixtures/mount.js';
import { startS3Server } from '../fixtures/s3.js';

// bin/lilio (the built dist/: run `npm run build` first) with a config file whose storages are two
// S3 buckets on s3rver and a Google Drive folder on the fake Drive, its key file named relative to the config.
const home = mkdtempSync(join(tmpdir(), 'lilio-cli-cloud-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const s3 = await startS3Server(t, ['replica-a', 'replica-b']);
const drive = await startFakeDrive(t);
writeFileSync(join(home, 'drive-key.json'), JSON.stringify(drive.oauth.serviceAccountKey()), { mode: 0o600 });
const configPath = join(home, 'config.json');
writeFileSync(
  configPath,
  JSON.stringify({
    metadata: { type: 'local', path: 'meta' },
    storages: [
      s3.storage('s3-a', 'replica-a', 'deep/er/prefix'),
      s3.storage('s3-b', 'replica-b'),
      {
        name: 'drive',
        type: 'gdrive',
        folderId: drive.folderId,
        credentialsFile: 'drive-key.json',
        rootUrl: drive.rootUrl,
      },
    ],
    quorum: { n: 3, w: 2, r: 2 },
    chunkSize: '64KiB',
  }),
);
const env = { LILIO_HOME: home, LILIO_CONFIG: configPath, LILIO_MASTER_KEY: randomBytes(32).toString('base64') };
const lilio = (args: string[], input?: Buffer) => runCli(args, env, input);

t.test('put and get through S3 and Drive storages round-trip exactly', async (t) => {
  // Encrypted: the engine test covers plain and encrypted buckets; this one is about the CLI and config.
  const created = await lilio(['bucket', 'create', 'sealed', '--encrypt']);
  t.equal(created.code, 0, created.stderr);
  const data = randomBytes(5 * 64 * 1024 + 777);
  const file = join(home, 'data.in');
  writeFileSync(file, data);
  const put = await lilio(['put', file, 'sealed/dir/data.bin']);
  t.equal(put.code, 0, put.stderr);
  t.notMatch(put.stderr, /Warning/, 'no SDK warnings on stderr');
  const out = join(home, 'data.out');
  const get = await lilio(['get', 'sealed/dir/data.bin', out]);
  t.equal(get.code, 0, get.stderr);
  t.ok(readFileSync(out).equals(data), 'file round trip');

  const status = await lilio(['status', '--json']);
  t.equal(status.code, 0, status.stderr);
  const backends = JSON.parse(status.stdout.toString()).backends as Array<Record<string, unknown>>;
  t.same(
    backends.map((b) => [b.name, b.type, b.healthy, b.chunks]),
    [
      ['s3-a', 's3', true, 6],
      ['s3-b', 's3', true, 6],
      ['drive', 'gdrive', true, 6],
    ],
    'every chunk on all three backends',
  );
  t.equal(backends[0]?.location, `s3://replica-a/deep/er/prefix/ at ${s3.endpoint}`);
  t.equal(drive.files().length, 6, 'six chunk files in the Drive folder');
});

t.test('a bad s3 storage entry is refused with the field path', async (t) => {
  const bad = join(home, 'bad.json');
  const { secretAccessKey: _, ...withoutSecret } = s3.storage('s3-a', 'replica-a') as Record<string, unknown>;
  writeFileSync(
    bad,
    JSON.stringify({ storages: [withoutSecret, { ...withoutSecret, region: '' }], quorum: { n: 1, w: 1, r: 1 } }),
  );
  const result = await lilio(['--config', bad, 'bucket', 'ls']);
  t.equal(result.code, 1);
  t.match(result.stderr, /storages\[0\]\.accessKeyId: accessKeyId and secretAccessKey go together/);
  t.match(result.stderr, /storages\[1\]\.region/);
});

t.test('S3 endpoints that are down: one clear error line, not a hang', async (t) => {
  const port = await freePort();
  const down = join(home, 'down.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  config.storages = config.storages
    .filter((s: { type: string }) => s.type === 's3')
    .map((s: object) => ({ ...s, endpoint: `http://127.0.0.1:${port}` }));
  config.quorum = { n: 2, w: 2, r: 1 };
  writeFileSync(down, JSON.stringify(config));
  const result = await lilio(['--config', down, 'put', '-', 'sealed/x'], Buffer.from('x'.repeat(10_000)));
  t.equal(result.code, 1);
  t.match(result.stderr, /^lilio: .*quorum not reached.*ECONNREFUSED/);
  t.equal(result.stderr.trim().split('\n').length, 1, 'one line');
});
