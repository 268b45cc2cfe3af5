import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultMountLog } from '../../src/cli/logging.js';
import { builtChildEnv } from '../fixtures/child-env.js';
import { LILIO_BIN, runCli } from '../fixtures/cli.js';
import { freePort, isMounted } from '../fixtures/mount.js';
import { nodeStatus } from '../fixtures/node.js';

// The logs of long-running processes, through the real binary: every line has an ISO timestamp
// and a level, --log-level filters, --log-format json is one JSON record per line, a log file is
// size-capped, and a put that left chunks under-replicated says so on the CLI's stderr.

const TEXT_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG) (node|mount|server): \S/;

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-logging-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface NodeRun {
  stderr(): string;
  /** SIGTERM, then the exit. */
  stop(): Promise<void>;
}

/** `lilio node` with these extra flags, ready once /health answers (which needs no token). */
async function runNode(t: Test, dir: string, extra: string[], tokenMode = 0o600): Promise<NodeRun> {
  const tokenFile = join(dir, `token-${tokenMode.toString(8)}`);
  writeFileSync(tokenFile, `${'k'.repeat(40)}\n`);
  chmodSync(tokenFile, tokenMode);
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      LILIO_BIN,
      'node',
      '--dir',
      join(dir, 'chunks'),
      '--listen',
      `127.0.0.1:${port}`,
      '--token-file',
      tokenFile,
      ...extra,
    ],
    { env: builtChildEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout!.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const stop = async () => {
    if (!done) child.kill('SIGTERM');
    await exited;
  };
  t.teardown(stop);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !done) {
    if ((await nodeStatus(`http://127.0.0.1:${port}`, '/health', undefined)) === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.notOk(done, `lilio node ${extra.join(' ')} is running: ${stderr}`);
  return { stderr: () => stderr, stop };
}

t.test('text logs on stderr: a timestamp and a level on every line', async (t) => {
  const dir = scratch(t);
  const node = await runNode(t, dir, []);
  await node.stop();
  const lines = node.stderr().trim().split('\n');
  t.ok(lines.length >= 3, `start, stop and more:\n${node.stderr()}`);
  for (const line of lines) t.match(line, TEXT_LINE, line);
  t.match(lines[0], / INFO {2}node: serving .* on http:\/\/127\.0\.0\.1:\d+/);
  t.match(node.stderr(), / INFO {2}node: terminated: finishing requests in progress/);
});

t.test('--log-level filters: warn keeps the warning, error keeps nothing here', async (t) => {
  const dir = scratch(t);
  const warn = await runNode(t, dir, ['--log-level', 'warn'], 0o644);
  await warn.stop();
  const lines = warn.stderr().trim().split('\n');
  t.equal(lines.length, 1, `one line:\n${warn.stderr()}`);
  t.match(lines[0], TEXT_LINE);
  t.match(lines[0], / WARN {2}node: .*token-644 is readable by other users/);

  const quiet = await runNode(t, dir, ['--log-level', 'error'], 0o644);
  await quiet.stop();
  t.equal(quiet.stderr(), '', 'nothing below error');

  const debug = await runNode(t, dir, ['--log-level', 'debug']);
  await debug.stop();
  t.match(debug.stderr(), / INFO {2}node: serving /, 'debug keeps info');
});

t.test('--log-format json --log-file: one JSON record per line in the file, nothing on stderr', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'logs', 'node.json.log');
  const node = await runNode(t, dir, ['--log-format', 'json', '--log-file', file]);
  await node.stop();
  t.equal(node.stderr(), '', 'stderr stays empty');
  const records = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.ok(records.length >= 2);
  for (const record of records) {
    t.match(record, { level: /^(info|warn|error|debug)$/, name: 'node', msg: String, pid: Number });
    t.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  t.match(records[0], { level: 'info', msg: /^serving /, url: /^http:\/\/127\.0\.0\.1:\d+$/ });
});

t.test('bad log options are bad usage', async (t) => {
  const dir = scratch(t);
  const env = { LILIO_HOME: dir, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
  for (const args of [
    ['node', '--dir', join(dir, 'n'), '--listen', '127.0.0.1:0', '--token-file', join(dir, 't'), '--log-level', 'loud'],
    ['mount', join(dir, 'm'), '--log-format', 'xml'],
    ['server', '--token-file', join(dir, 't'), '--log-level', 'trace'],
  ]) {
    writeFileSync(join(dir, 't'), `${'k'.repeat(40)}\n`, { mode: 0o600 });
    const result = await runCli(args, env);
    t.equal(result.code, 2, `${args[0]}: exit 2`);
    t.match(result.stderr, /^lilio: --log-(level|format): "\w+" is not one of /, String(args[0]));
    t.equal(result.stderr.split('\n').length, 2, 'one line');
  }
});

t.test('a background mount logs to $LILIO_HOME/logs, size-capped and rotated', async (t) => {
  const home = scratch(t);
  const mountpoint = join(home, 'mnt');
  const config = join(home, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      storages: [1, 2, 3].map((i) => ({ name: `local-${i}`, type: 'local', path: `data/${i}` })),
      logging: { maxSize: '64KiB', keep: 1 },
    }),
  );
  const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
  const mounted = await runCli(['mount', mountpoint, '--config', config, '--log-level', 'debug'], env);
  t.teardown(async () => {
    if (isMounted(mountpoint)) await runCli(['umount', mountpoint], env);
  });
  t.equal(mounted.code, 0, mounted.stderr);
  const log = defaultMountLog(home, mountpoint);
  t.equal(log, join(home, 'logs', `mount-${mountpoint.slice(1).replaceAll('/', '-')}.log`));
  t.match(mounted.stdout.toString(), `log ${log}`);

  // Each lookup of a missing bucket is a debug line (~110 bytes): 2 500 of them pass the cap thrice.
  for (let i = 0; i < 2_500; i++) {
    try {
      statSync(join(mountpoint, `no-such-bucket-${i}`));
    } catch {}
  }
  const unmounted = await runCli(['umount', mountpoint], env);
  t.equal(unmounted.code, 0, unmounted.stderr);

  t.same(
    readdirSync(join(home, 'logs')).sort(),
    [`${log.split('/').at(-1)}`, `${log.split('/').at(-1)}.1`, `${log.split('/').at(-1)}.stderr`].sort(),
    'the log, one rotated file (keep: 1) and the start-up output',
  );
  for (const file of [log, `${log}.1`]) {
    const size = statSync(file).size;
    t.ok(size <= 64 * 1024, `${file}: ${size} bytes, within the 64 KiB cap`);
    for (const line of readFileSync(file, 'utf8').trim().split('\n')) t.match(line, TEXT_LINE);
  }
  t.ok(statSync(`${log}.1`).size > 60 * 1024, 'the rotated file was full');
  t.match(readFileSync(log, 'utf8'), / INFO {2}mount: unmounted /, 'the newest lines are in the log itself');
  t.equal(readFileSync(`${log}.stderr`, 'utf8'), '', 'nothing went around the log');
});

t.test('a put that left chunks under-replicated warns on stderr', async (t) => {
  const home = scratch(t);
  const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
  t.equal((await runCli(['bucket', 'create', 'photos'], env)).code, 0);
  const local = join(home, 'big.bin');
  writeFileSync(local, Buffer.alloc(3 * 1024 * 1024 + 7, 1));
  const healthy = await runCli(['put', local, 'photos/a.bin'], env);
  t.equal(healthy.code, 0, healthy.stderr);
  t.notMatch(healthy.stderr, /warning/, 'no warning while every backend works');

  // The embedded default's third backend breaks: its directory becomes a file.
  rmSync(join(home, 'data', '3'), { recursive: true, force: true });
  mkdirSync(join(home, 'data'), { recursive: true });
  writeFileSync(join(home, 'data', '3'), 'not a directory');
  const degraded = await runCli(['put', local, 'photos/b.bin'], env);
  t.equal(degraded.code, 0, 'the put succeeds on W replicas');
  t.match(
    degraded.stderr,
    /^lilio: warning: stored photos\/b\.bin with \d+ of 4 chunk\(s\) under-replicated \(local-3: .*\); repair will write the missing replicas$/m,
  );
  t.notMatch(degraded.stderr, /^\s+at /m, 'no stack');
});
