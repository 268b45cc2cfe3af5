import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';

const home = mkdtempSync(join(tmpdir(), 'lilio-cli-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const lilio = (args: string[], input?: Buffer) => runCli(args, env, input);

t.test('bucket create, ls, info', async (t) => {
  const created = await lilio(['bucket', 'create', 'photos']);
  t.equal(created.code, 0, created.stderr);
  t.match(created.stdout.toString(), /created bucket photos, chunk size 1 MiB/);
  const secret = await lilio(['bucket', 'create', 'secret', '--encrypt', '--chunk-size', '64KiB']);
  t.equal(secret.code, 0, secret.stderr);
  t.match(secret.stdout.toString(), /\(encrypted\), chunk size 64 KiB/);
  const list = await lilio(['bucket', 'ls']);
  t.match(list.stdout.toString(), /photos\s+no\s+1 MiB/);
  t.match(list.stdout.toString(), /secret\s+yes\s+64 KiB/);
  const info = await lilio(['bucket', 'info', 'secret', '--json']);
  t.match(JSON.parse(info.stdout.toString()), { name: 'secret', encrypted: true, chunkSize: 65536, objects: 0 });
});

t.test('put and get round-trip files and pipes exactly', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 1);
  const file = join(home, 'in.bin');
  writeFileSync(file, data);
  const put = await lilio(['put', file, 'secret/dir/in.bin']);
  t.equal(put.code, 0, put.stderr);
  const out = join(home, 'out.bin');
  const get = await lilio(['get', 'secret/dir/in.bin', out]);
  t.equal(get.code, 0, get.stderr);
  t.ok(readFileSync(out).equals(data), 'file round trip');

  const piped = randomBytes(200_000);
  t.equal((await lilio(['put', '-', 'photos/piped.bin'], piped)).code, 0);
  const back = await lilio(['get', 'photos/piped.bin', '-']);
  t.equal(back.code, 0, back.stderr);
  t.ok(back.stdout.equals(piped), 'stdin to stdout round trip');
});

t.test('ls, stat, rm', async (t) => {
  await lilio(['put', '-', 'photos/a/b/c.txt'], Buffer.from('hello'));
  const top = await lilio(['ls', 'photos']);
  t.same(top.stdout.toString().trim().split('\n'), ['a/', 'piped.bin']);
  const recursive = await lilio(['ls', '-r', 'photos/a/']);
  t.same(recursive.stdout.toString().trim().split('\n'), ['a/b/c.txt']);
  const stat = await lilio(['stat', 'photos/piped.bin', '--json']);
  t.match(JSON.parse(stat.stdout.toString()), { bucket: 'photos', key: 'piped.bin', size: 200_000 });
  t.equal((await lilio(['rm', 'photos/a/b/c.txt'])).code, 0);
  const again = await lilio(['rm', 'photos/a/b/c.txt']);
  t.equal(again.code, 1);
  t.equal(again.stderr, 'lilio: object "photos/a/b/c.txt" does not exist\n', 'one line, no stack trace');
});

t.test('errors: one line on stderr and a non-zero exit code', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['bucket', 'create', 'Bad_Name'], /^lilio: invalid bucket name "Bad_Name"/],
    [['bucket', 'create', 'metrics'], /is reserved/],
    [['bucket', 'create', 'photos'], /already exists|exists/],
    [['bucket', 'rm', 'secret'], /not empty/],
    [['get', 'photos/none', join(home, 'x')], /does not exist/],
    [['get', 'nosuchbucket/k', '-'], /bucket "nosuchbucket" does not exist/],
    [['put', join(home, 'missing-file'), 'photos/k'], /missing-file: no such file or directory/],
    [['put', '-', 'photos/../x'], /invalid key/],
    [['stat', 'photos'], /names no object/],
  ];
  for (const [args, message] of cases) {
    const result = await lilio(args);
    t.equal(result.code, 1, args.join(' '));
    t.match(result.stderr, message, args.join(' '));
    t.equal(result.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
  }
  const usage = await lilio(['put']);
  t.equal(usage.code, 2, 'missing arguments is a usage error');
  const badConfig = join(home, 'bad.json');
  writeFileSync(
    badConfig,
    JSON.stringify({ storages: [{ name: 'a', type: 'local', path: 'x' }], quorum: { n: 3, w: 1, r: 1 } }),
  );
  const refused = await runCli(['bucket', 'ls', '--config', badConfig], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /W \+ R must be greater than N/);
  t.match(refused.stderr, /N=3 replicas need at least 3 storage backends/);
});

t.test('status shows backends, ring shares and buckets', async (t) => {
  const status = await lilio(['status', '--json']);
  t.equal(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout.toString());
  t.equal(parsed.backends.length, 3);
  for (const b of parsed.backends) {
    t.equal(b.healthy, true, `${b.name} healthy`);
    t.ok(b.chunks > 0, `${b.name} holds chunks`);
    t.ok(b.ringShare > 0.2 && b.ringShare < 0.47, `${b.name} ring share ${b.ringShare}`);
  }
  t.match(parsed.buckets, [{ name: 'photos' }, { name: 'secret', encrypted: true, objects: 1 }]);
  const text = await lilio(['status']);
  t.match(text.stdout.toString(), /BACKEND\s+TYPE\s+HEALTH/);
});

t.test('meta dump and load move metadata to another store', async (t) => {
  const dump = join(home, 'meta.jsonl');
  const dumped = await lilio(['meta', 'dump', dump]);
  t.equal(dumped.code, 0, dumped.stderr);
  const lines = readFileSync(dump, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.ok(
    lines.some((l) => (l.kind === 'bucket' && l.bucket?.name === 'secret') || l.name === 'secret'),
    'bucket line',
  );
  // A second store over the same backends and master key: load the dump, read the data through it.
  const config = join(home, 'moved.json');
  writeFileSync(
    config,
    JSON.stringify({
      metadata: { type: 'local', path: join(home, 'meta2') },
      storages: [1, 2, 3].map((i) => ({ name: `local-${i}`, type: 'local', path: join(home, 'data', String(i)) })),
      quorum: { n: 3, w: 2, r: 2 },
      encryption: { masterKeyFile: join(home, 'master.key') },
    }),
  );
  const loaded = await runCli(['meta', 'load', dump, '--config', config], env);
  t.equal(loaded.code, 0, loaded.stderr);
  const back = await runCli(['get', 'photos/piped.bin', '-', '--config', config], env);
  t.equal(back.code, 0, back.stderr);
  t.equal(back.stdout.length, 200_000);
});

t.test('gc deletes what rm left once the grace period is over', async (t) => {
  await lilio(['rm', 'secret/dir/in.bin']);
  const kept = await lilio(['gc']);
  t.match(kept.stdout.toString(), /deleted 0 chunk/);
  const gone = await lilio(['gc', '--grace', '0']);
  t.equal(gone.code, 0, gone.stderr);
  t.match(gone.stdout.toString(), /deleted (4[89]|5\d) chunk/, '3 MiB of 64 KiB chunks');
});
