import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultMountLog } from '../../src/cli/logging.js';
import { builtChildEnv, builtNode } from '../fixtures/child-env.js';
import { type CliResult, LILIO_BIN, runCli } from '../fixtures/cli.js';
import { startMount } from '../fixtures/mount.js';

// Every failure is one line on stderr, with status 1 for a failed operation and 2 for bad usage
// (bad option values included); no stack trace, no exit status 70, no raw Node message.

const home = mkdtempSync(join(tmpdir(), 'lilio-failures-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const lilio = (args: string[]) => runCli(args, env);

function failsInOneLine(t: Test, result: CliResult, code: number, message: RegExp, what: string): void {
  t.equal(result.code, code, `${what}: exit ${code}`);
  t.match(result.stderr, message, what);
  t.equal(result.stderr.split('\n').length, 2, `${what}: exactly one line on stderr: ${result.stderr}`);
  t.notMatch(result.stderr, /^\s+at /m, `${what}: no stack frames`);
  t.notMatch(result.stderr, /\bE[A-Z]{3,}\b|unexpected/, `${what}: our words, not a raw Node code`);
}

/** A port some other program holds. */
async function busyPort(t: Test): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

t.test('bad option values are bad usage (exit 2)', async (t) => {
  const tokenFile = join(home, 'tokens');
  writeFileSync(tokenFile, `${'t'.repeat(40)}\n`, { mode: 0o600 });
  const cases: string[][] = [
    ['scrub', '--metrics-port', 'abc'],
    ['mount', join(home, 'm1'), '--metrics-port', '99999'],
    ['mount', join(home, 'm1'), '--cache-size', 'lots'],
    ['gc', '--grace', '-1'],
    ['node', '--dir', join(home, 'n'), '--listen', '127.0.0.1:0', '--metrics-port', 'x'],
    ['server', '--token-file', tokenFile, '--listen', 'nowhere'],
  ];
  for (const args of cases) {
    failsInOneLine(t, await lilio(args), 2, /^lilio: --[a-z-]+: "/, args.join(' '));
  }
  t.notOk(existsSync(join(home, 'm1')), 'a refused mount made no directory');
});

t.test('a port in use fails the operation in one line (exit 1), and the mount does not hang', async (t) => {
  const port = await busyPort(t);
  const message = new RegExp(`^lilio: 127\\.0\\.0\\.1:${port}: address already in use\\n$`);
  failsInOneLine(t, await lilio(['scrub', '--metrics-port', String(port)]), 1, message, 'scrub');
  const foreground = await lilio(['mount', '--foreground', join(home, 'm2'), '--metrics-port', String(port)]);
  failsInOneLine(t, foreground, 1, message, 'mount --foreground');

  // A background mount that failed: its reason, from this run only, not stale lines of older runs.
  const mountpoint = join(home, 'm3');
  const log = defaultMountLog(home, mountpoint);
  mkdirSync(dirname(log), { recursive: true });
  writeFileSync(`${log}.stderr`, 'lilio: an old failure from another day\nfuse: stale line\n');
  writeFileSync(log, 'lilio: an old failure from another day\n');
  const detached = await lilio(['mount', mountpoint, '--metrics-port', String(port)]);
  failsInOneLine(
    t,
    detached,
    1,
    new RegExp(`^lilio: mount of .*m3 failed: 127\\.0\\.0\\.1:${port}: address already in use \\(log: `),
    'background mount',
  );
  t.ok(detached.stderr.includes(`(log: ${log})`), `the log is under $LILIO_HOME/logs: ${detached.stderr}`);
  // The mount's own log says why it ended, with a timestamp and a level.
  t.match(
    readFileSync(log, 'utf8'),
    new RegExp(`\\n\\S+Z ERROR mount: mount of .*m3 failed: 127\\.0\\.0\\.1:${port}: address already in use`),
  );
  t.notMatch(detached.stderr, /old failure|stale line/, 'no lines of older runs');
});

t.test('mountpoints: missing parent, not empty, already mounted', async (t) => {
  const nested = join(home, 'no', 'such', 'mnt');
  failsInOneLine(
    t,
    await lilio(['mount', nested]),
    1,
    /^lilio: cannot mount on .*\/no\/such\/mnt: its parent directory .*\/no\/such does not exist\n$/,
    'missing parent',
  );
  t.notOk(existsSync(join(home, 'no')), 'no tree was created');

  const full = join(home, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'file'), 'x');
  failsInOneLine(t, await lilio(['mount', full]), 1, /is not empty/, 'non-empty mountpoint');

  const mounted = await startMount(t);
  for (const args of [
    ['mount', mounted.dir],
    ['mount', '--foreground', mounted.dir],
  ]) {
    failsInOneLine(
      t,
      await runCli(args, mounted.env),
      1,
      /^lilio: .* is already mounted by a live filesystem; unmount it first/,
      args.join(' '),
    );
  }
});

t.test('a missing local file is said in our words', async (t) => {
  t.equal((await lilio(['bucket', 'create', 'files'])).code, 0);
  const missing = join(home, 'missing.bin');
  failsInOneLine(
    t,
    await lilio(['put', missing, 'files/x']),
    1,
    new RegExp(`^lilio: ${missing}: no such file or directory\\n$`),
    'put',
  );
  failsInOneLine(
    t,
    await lilio(['put', home, 'files/x']),
    1,
    new RegExp(`^lilio: ${home} is a directory: put takes one file\\n$`),
    'put of a directory',
  );
});

t.test('a reader that goes away ends the command quietly (exit 0)', async (t) => {
  // Enough records that the dump outgrows the pipe's buffer and meets the closed end.
  const lines = [JSON.stringify({ kind: 'header', format: 1, store: 'local', dumpedAt: Date.now() })];
  const attrs = { mode: 420, uid: 0, gid: 0, mtimeMs: 1, atimeMs: 1, ctimeMs: 1 };
  lines.push(
    JSON.stringify({
      kind: 'bucket',
      bucket: { name: 'many', createdAt: 1, id: 'a'.repeat(32), encrypted: false, chunkSize: 1048576, attrs },
    }),
  );
  for (let i = 0; i < 3000; i++) {
    lines.push(
      JSON.stringify({
        kind: 'object',
        object: {
          kind: 'file',
          versionId: createHash('md5').update(String(i)).digest('hex'),
          size: 3,
          chunkSize: 1048576,
          attrs,
          committedAt: 1,
          bucket: 'many',
          key: `key-${i}`,
          version: 1,
          chunks: [],
          inline: 'aGkK',
        },
      }),
    );
  }
  const dumpFile = join(home, 'many.jsonl');
  writeFileSync(dumpFile, `${lines.join('\n')}\n`);
  const loaded = await lilio(['meta', 'load', dumpFile]);
  t.equal(loaded.code, 0, loaded.stderr);

  for (const args of [
    ['meta', 'dump'],
    ['ls', 'many'],
  ]) {
    const childEnv = builtChildEnv(env);
    const child = spawn(...builtNode([LILIO_BIN, ...args], childEnv), { env: childEnv });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // Like `| head -1`: read the first piece, then close the pipe.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((r) => child.on('close', r));
    t.equal(code, 0, `${args.join(' ')} | head: exit 0`);
    t.notMatch(stderr, /EPIPE|^\s+at |unexpected/m, `${args.join(' ')} | head: quiet (${stderr})`);
  }
  t.ok(readdirSync(home).length > 0);
});
