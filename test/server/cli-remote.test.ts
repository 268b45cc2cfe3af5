import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';
import { pattern } from '../fixtures/engine.js';
import { freePort } from '../fixtures/mount.js';
import { startServer } from '../fixtures/server.js';

// The CLI with --endpoint talks to a running `lilio server` instead of opening the stores;
// what one side writes, the other reads back byte for byte.

const server = await startServer(t);
const remote = server.cli;
const local = server.localCli;

t.test('bucket commands through the server', async (t) => {
  const created = await remote(['bucket', 'create', 'photos']);
  t.equal(created.code, 0, created.stderr);
  t.match(created.stdout.toString(), /created bucket photos, chunk size 1 MiB/);
  const secret = await remote(['bucket', 'create', 'secret', '--encrypt', '--chunk-size', '64KiB']);
  t.equal(secret.code, 0, secret.stderr);
  t.match(secret.stdout.toString(), /created bucket secret \(encrypted\), chunk size 64 KiB/);
  t.equal((await remote(['bucket', 'create', 'scratch'])).code, 0);

  const listed = await remote(['bucket', 'ls']);
  t.match(listed.stdout.toString(), /photos\s+no\s+1 MiB/);
  t.match(listed.stdout.toString(), /secret\s+yes\s+64 KiB/);
  t.same(listed.stdout.toString(), (await local(['bucket', 'ls'])).stdout.toString(), 'same table as the local CLI');

  const info = await remote(['bucket', 'info', 'secret', '--json']);
  t.match(JSON.parse(info.stdout.toString()), { name: 'secret', encrypted: true, chunkSize: 65536, objects: 0 });
  t.equal((await remote(['bucket', 'rm', 'scratch'])).code, 0);
  const gone = await remote(['bucket', 'info', 'scratch']);
  t.equal(gone.code, 1);
  t.equal(gone.stderr, 'lilio: bucket "scratch" does not exist\n', "the engine's message, one line");
});

t.test('put and get round-trip exactly through the server, both ways with the local store', async (t) => {
  // 0 B, 1 B and multi-chunk objects; 1 MiB chunks in photos, 64 KiB encrypted chunks in secret.
  const cases: Array<[string, number]> = [
    ['photos', 0],
    ['secret', 1],
    ['photos', 3 * 1024 * 1024 + 1],
    ['secret', 5 * 64 * 1024 + 7],
  ];
  for (const [i, [bucket, size]] of cases.entries()) {
    const data = pattern(size, 100 + i);
    const file = join(server.home, `in-${i}.bin`);
    writeFileSync(file, data);
    const put = await remote(['put', file, `${bucket}/remote/${size}.bin`]);
    t.equal(put.code, 0, put.stderr);
    const viaLocal = await local(['get', `${bucket}/remote/${size}.bin`, '-']);
    t.equal(viaLocal.code, 0, viaLocal.stderr);
    t.ok(viaLocal.stdout.equals(data), `${bucket}: ${size} B put via the server, read locally`);
    t.equal((await local(['put', file, `${bucket}/local/${size}.bin`])).code, 0);
    const out = join(server.home, `out-${i}.bin`);
    const viaServer = await remote(['get', `${bucket}/local/${size}.bin`, out]);
    t.equal(viaServer.code, 0, viaServer.stderr);
    t.ok(readFileSync(out).equals(data), `${bucket}: ${size} B put locally, read via the server into a file`);
  }
  const piped = pattern(300_001, 7);
  const stdin = await remote(['put', '-', 'photos/piped.bin'], piped);
  t.equal(stdin.code, 0, stdin.stderr);
  t.match(stdin.stderr, /stored photos\/piped\.bin: 293 KiB in 1 chunk/);
  t.ok((await remote(['get', 'photos/piped.bin', '-'])).stdout.equals(piped), 'stdin (chunked upload) to stdout');
});

t.test('ls, stat, rm through the server match the local CLI', async (t) => {
  await remote(['put', '-', 'photos/a/b/c.txt'], Buffer.from('hello'));
  for (const args of [
    ['ls', '-r', 'secret'],
    ['ls', '-l', 'photos/a/'],
  ]) {
    const viaServer = await remote(args);
    t.equal(viaServer.code, 0, viaServer.stderr);
    t.same(viaServer.stdout.toString(), (await local(args)).stdout.toString(), args.join(' '));
  }
  t.same((await remote(['ls', 'photos'])).stdout.toString().trim().split('\n'), [
    'a/',
    'local/',
    'remote/',
    'piped.bin',
  ]);
  const stat = await remote(['stat', 'secret/remote/327687.bin', '--json']);
  t.equal(stat.code, 0, stat.stderr);
  const record = JSON.parse(stat.stdout.toString());
  t.match(record, { bucket: 'secret', key: 'remote/327687.bin', size: 327687 });
  t.equal(record.chunks.length, 6);
  t.same(record, JSON.parse((await local(['stat', 'secret/remote/327687.bin', '--json'])).stdout.toString()));
  t.match((await remote(['stat', 'photos/piped.bin'])).stdout.toString(), /size\s+293 KiB \(300001\)/);

  t.equal((await remote(['rm', 'photos/a/b/c.txt'])).code, 0);
  t.equal((await local(['stat', 'photos/a/b/c.txt'])).code, 1, 'removed for the local CLI too');
  const again = await remote(['rm', 'photos/a/b/c.txt']);
  t.equal(again.code, 1);
  t.equal(again.stderr, 'lilio: object "photos/a/b/c.txt" does not exist\n');
});

t.test('errors through the server: one line, exit 1', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['bucket', 'create', 'photos'], /exists/],
    [['bucket', 'rm', 'secret'], /not empty/],
    [['get', 'photos/none', '-'], /object "photos\/none" does not exist/],
    [['get', 'nosuchbucket/k', '-'], /bucket "nosuchbucket" does not exist/],
    [['bucket', 'create', 'secret2', '--chunk-size', '1KiB'], /out of range/],
  ];
  for (const [args, message] of cases) {
    const result = await remote(args);
    t.equal(result.code, 1, args.join(' '));
    t.match(result.stderr, message, args.join(' '));
    t.equal(result.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
  }
  const badToken = await runCli(['bucket', 'ls', '--endpoint', server.url], {
    ...server.env,
    LILIO_TOKEN: 'x'.repeat(32),
  });
  t.equal(badToken.code, 1);
  t.match(badToken.stderr, /^lilio: a valid bearer token is required/);
  const noToken = await runCli(['bucket', 'ls', '--endpoint', server.url], { ...server.env, LILIO_TOKEN: '' });
  t.equal(noToken.code, 1);
  const viaFile = await runCli(['--endpoint', server.url, '--token-file', server.tokenFile, 'bucket', 'ls'], {
    ...server.env,
    LILIO_TOKEN: '',
  });
  t.equal(viaFile.code, 0, `--token-file before the command name: ${viaFile.stderr}`);
  const nobody = `http://127.0.0.1:${await freePort()}`;
  const unreachable = await runCli(['bucket', 'ls', '--endpoint', nobody], { LILIO_TOKEN: server.token });
  t.equal(unreachable.code, 1);
  t.match(
    unreachable.stderr,
    /^lilio: cannot reach 127\.0\.0\.1:\d+: connection refused \(is `lilio server` running there\?\)\n$/,
  );
  const notUrl = await runCli(['bucket', 'ls', '--endpoint', 'ftp://x'], {});
  t.equal(notUrl.code, 2, 'a bad option value is bad usage');
  t.match(notUrl.stderr, /not an http:\/\/ or https:\/\/ URL/);
  const both = await remote(['bucket', 'ls', '--config', '/etc/lilio.json']);
  t.equal(both.code, 2, 'options that exclude each other are bad usage');
  t.match(both.stderr, /--config and --endpoint exclude each other/);
  t.equal((await remote(['put', join(server.home, 'missing'), 'photos/x'])).code, 1, 'a missing local file');
});

t.test('status through the server', async (t) => {
  const status = await remote(['status', '--json']);
  t.equal(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout.toString());
  t.equal(parsed.backends.length, 3);
  t.equal(parsed.server.pid, server.pid, 'answered by the server process');
  t.equal(parsed.repair.queued, 0);
  t.match(parsed.buckets, [{ name: 'photos' }, { name: 'secret', encrypted: true }]);
  const text = await remote(['status']);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout.toString(), new RegExp(`server: pid ${server.pid}, up \\d+ s`));
  t.match(text.stdout.toString(), /BACKEND\s+TYPE\s+HEALTH\s+LATENCY/);
  t.match(text.stdout.toString(), /repair backlog:\s+0 under-replicated chunk\(s\).*; 0 queued in the server/);
});
