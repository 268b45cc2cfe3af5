import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { builtChildEnv, builtNode } from '../fixtures/child-env.js';
import { LILIO_BIN, runCli } from '../fixtures/cli.js';
import { pattern } from '../fixtures/engine.js';

// A process killed with SIGKILL in the middle of a write: while its session lives, nothing it
// sealed is collected (not even with a zero grace period); once its lease has expired, the next
// gc ends the session and deletes what it wrote and never committed, from the garbage queue.

const home = mkdtempSync(join(tmpdir(), 'lilio-sessions-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const config = join(home, 'config.json');
writeFileSync(
  config,
  JSON.stringify({
    metadata: { type: 'local', path: join(home, 'meta') },
    storages: [1, 2, 3].map((i) => ({ name: `local-${i}`, type: 'local', path: join(home, 'data', String(i)) })),
    quorum: { n: 3, w: 2, r: 2 },
    sessions: { ttlSeconds: 1 },
  }),
);
const lilio = (args: string[]) => runCli([...args, '--config', config], env);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function chunkFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /^[0-9a-f]{32}$/.test(entry.name)) found.push(entry.name);
  }
  return found;
}

t.test('a writer killed with SIGKILL: its chunks are kept while its lease lives, collected after', async (t) => {
  const created = await lilio(['bucket', 'create', 'logs', '--chunk-size', '64KiB']);
  t.equal(created.code, 0, created.stderr);

  const childEnv = builtChildEnv(env);
  const child = spawn(...builtNode([LILIO_BIN, 'put', '-', 'logs/app.log', '--config', config], childEnv), {
    env: childEnv,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  // Three full chunks, and the input stays open: a log file still being written.
  child.stdin.write(pattern(3 * 65536 + 10));

  const store = LocalMetadataStore.open({ path: join(home, 'meta') });
  t.teardown(() => store.close());
  let writer: Awaited<ReturnType<typeof store.listSessions>>[number] | undefined;
  // Holds are recorded as chunks are sealed, before their replicas are written: wait for both.
  for (let waited = 0; waited < 20_000; waited += 100) {
    writer = (await store.listSessions()).find((s) => s.pid === child.pid && s.heldChunks >= 3);
    if (writer && chunkFiles(join(home, 'data')).length >= 9) break;
    await sleep(100);
  }
  t.ok(writer, 'the writer holds its three sealed chunks');
  t.match(writer?.role, /put/);
  const written = chunkFiles(join(home, 'data'));
  t.equal(written.length, 9, 'three chunks, three replicas each');

  const alive = await lilio(['gc', '--grace', '0', '--json']);
  t.equal(alive.code, 0, alive.stderr);
  t.match(JSON.parse(alive.stdout.toString()), { queue: { deleted: 0 }, orphans: { orphans: 0, held: 3 } });
  t.same(chunkFiles(join(home, 'data')).sort(), written.sort(), 'gc with no grace deleted nothing in use');

  child.kill('SIGKILL');
  await exited;
  // Still protected until the lease runs out (1 s after its last renewal); then it protects nothing.
  for (let waited = 0; waited < 10_000 && (await store.listSessions()).length > 0; waited += 100) await sleep(100);
  t.same(await store.listSessions(), [], 'the lease expired');
  t.equal(chunkFiles(join(home, 'data')).length, 9, 'nothing was deleted by the expiry itself');

  const after = await lilio(['gc', '--grace', '0', '--queue-only', '--json']);
  t.equal(after.code, 0, after.stderr);
  t.match(JSON.parse(after.stdout.toString()), { queue: { deleted: 3, retried: 0, waiting: 0 } });
  t.same(chunkFiles(join(home, 'data')), [], 'the dead writer’s chunks were queued and deleted');
  t.equal((await lilio(['get', 'logs/app.log', '-'])).code !== 0, true, 'and nothing was ever committed');
});
