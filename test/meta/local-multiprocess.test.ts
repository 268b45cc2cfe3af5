import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import type { ObjectRecord } from '../../src/core/types.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { DB_FILE } from '../../src/meta/local-db.js';
import { bucketRecord } from '../contracts/meta-fixtures.js';
import { builtChildEnv, builtNode } from '../fixtures/child-env.js';
import { counterOf, META_BUCKET, recordProblem, selfCheckingDraft, withCounter } from '../fixtures/meta-records.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const fixture = (name: string) => join(ROOT, 'test', 'fixtures', name);

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lilio-meta-mp-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a fixture under tsx; the child is SIGKILLed at teardown if it is still running. */
function start(t: Test, name: string, args: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const env = builtChildEnv();
  const child = spawn(...builtNode(['--import', 'tsx', fixture(name), ...args], env), {
    cwd: ROOT,
    env,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines };
}

async function nextLine(lines: AsyncIterator<string>, what: string): Promise<string> {
  const { value, done } = await lines.next();
  if (done) throw new Error(`${what}: the child ended without a line`);
  return value;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

t.test('four processes commit into one store at once: nothing lost, versions exact', async (t) => {
  const dir = await tempDir(t);
  const [workers, count, shared] = [4, 250, 5];
  // The workers open the fresh directory at the same time: creating the schema races too.
  const children = Array.from({ length: workers }, (_, w) =>
    start(t, 'meta-contender.ts', [dir, String(w), String(count), String(shared)]),
  );
  for (const [w, { lines }] of children.entries()) t.equal(await nextLine(lines, `worker ${w}`), 'ready');
  const setup = LocalMetadataStore.open({ path: dir });
  await setup.createBucket(bucketRecord(META_BUCKET));
  for (let k = 0; k < shared; k++) {
    await setup.putObject(withCounter(selfCheckingDraft(`shared/k${k}`, 0), 0), 'absent');
  }
  await setup.close();
  for (const { child } of children) child.stdin!.end('go\n');
  const reports = await Promise.all(
    children.map(async ({ child, lines }, w) => {
      const report = JSON.parse(await nextLine(lines, `worker ${w}`)) as { versions: number[]; conflicts: number };
      t.same(await exited(child), { code: 0, signal: null }, `worker ${w} exited cleanly`);
      return report;
    }),
  );

  const store = LocalMetadataStore.open({ path: dir });
  t.teardown(() => store.close());
  const records: ObjectRecord[] = [];
  for await (const record of store.iterateObjects(META_BUCKET)) records.push(record);
  t.equal(records.length, workers * count + shared, 'every key is there');
  for (let w = 0; w < workers; w++) {
    const own = records.filter((r) => r.key.startsWith(`w${w}/`));
    t.equal(own.length, count, `worker ${w}: all its keys`);
    const versions = reports[w]!.versions;
    t.ok(
      versions.every((v, i) => i === 0 || v > versions[i - 1]!),
      `worker ${w}: versions rise commit by commit`,
    );
  }
  const counters = records.filter((r) => r.key.startsWith('shared/')).map(counterOf);
  t.same(counters, Array(shared).fill((workers * count) / shared), 'no increment lost');
  const commits = shared + 2 * workers * count;
  const versions = records.map((r) => r.version);
  t.equal(new Set(versions).size, versions.length, 'no two records share a version');
  t.equal(Math.max(...versions), commits, 'exactly one version per successful commit, none for failed ones');
  t.equal(records.map(recordProblem).filter(Boolean).length, 0, 'every record whole');
  t.comment(`conflicts retried: ${reports.map((r) => r.conflicts).join(', ')}`);
});

t.test('SIGKILL in the middle of commits never leaves a torn or lost version', async (t) => {
  const dir = await tempDir(t);
  const setup = LocalMetadataStore.open({ path: dir });
  await setup.createBucket(bucketRecord(META_BUCKET));
  await setup.close();

  for (let round = 1; round <= 4; round++) {
    const { child, lines } = start(t, 'meta-churner.ts', [dir]);
    t.equal(await nextLine(lines, 'churner'), 'running', `round ${round}: churning`);
    // Meanwhile a reader in this process must only ever see whole versions.
    const reader = LocalMetadataStore.open({ path: dir });
    const deadline = Date.now() + 50 + Math.floor(Math.random() * 250);
    let reads = 0;
    let torn = 0;
    while (Date.now() < deadline) {
      const page = await reader.list(META_BUCKET, { prefix: 'churn/' });
      for (const summary of page.objects.slice(0, 5)) {
        const record = await reader.getObject(META_BUCKET, summary.key);
        if (record && recordProblem(record)) torn++;
        reads++;
      }
      await new Promise(setImmediate);
    }
    t.equal(torn, 0, `round ${round}: concurrent reads saw only whole versions`);
    t.ok(child.kill('SIGKILL'), `round ${round}: killed pid ${child.pid} after ${reads} reads`);
    t.same(await exited(child), { code: null, signal: 'SIGKILL' });
    await reader.close();
    await verify(t, dir, round);
  }
});

async function verify(t: Test, dir: string, round: number): Promise<void> {
  const db = new Database(join(dir, DB_FILE), { readonly: true });
  try {
    t.same(db.pragma('integrity_check', { simple: true }), 'ok', `round ${round}: integrity_check`);
    const dirs = db.prepare('SELECT prefix FROM dirs WHERE bucket = ?').pluck().all(META_BUCKET) as string[];
    const keys = db.prepare('SELECT key FROM objects WHERE bucket = ?').pluck().all(META_BUCKET) as string[];
    const expected = new Set<string>();
    for (const key of keys) {
      for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) expected.add(key.slice(0, i + 1));
    }
    t.same(new Set(dirs), expected, `round ${round}: directory rows exact`);
  } finally {
    db.close();
  }

  const store = LocalMetadataStore.open({ path: dir });
  try {
    const live = new Set<string>();
    let problems = 0;
    let records = 0;
    for await (const record of store.iterateObjects(META_BUCKET)) {
      records++;
      if (recordProblem(record)) problems++;
      for (const chunk of record.chunks) live.add(chunk.id);
    }
    t.equal(problems, 0, `round ${round}: all ${records} records are whole versions`);
    let reaped = 0;
    for (let after: string | undefined, page = await store.peekGarbage(undefined, 1000); page.length > 0; ) {
      reaped += page.filter((g) => live.has(g.chunk.id)).length;
      after = page[page.length - 1]!.chunk.id;
      page = await store.peekGarbage(after, 1000);
    }
    t.equal(reaped, 0, `round ${round}: no live chunk waits in the garbage queue`);
    const probe = await store.putObject(selfCheckingDraft(`after/round${round}`, 3), 'absent');
    t.strictSame(await store.getObject(META_BUCKET, probe.key), probe, `round ${round}: the store keeps working`);
  } finally {
    await store.close();
  }
}
