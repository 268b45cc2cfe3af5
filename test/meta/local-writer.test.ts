import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { ConflictError, NotEmptyError, NotFoundError } from '../../src/core/errors.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { DB_FILE } from '../../src/meta/local-db.js';
import { bucketRecord } from '../contracts/meta-fixtures.js';
import { builtChildEnv, builtNode } from '../fixtures/child-env.js';
import { META_BUCKET, recordProblem, selfCheckingDraft } from '../fixtures/meta-records.js';

// The local store's writer thread (src/meta/local-writer.ts, local-routing.ts): writes that would
// wait for the lock or run long go there, and the caller's thread stays free meanwhile.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** More chunks than a commit makes on the caller's thread (LONG_CHUNK_LIST in local.ts). */
const LONG = 500;

async function openStore(t: Test, busyTimeoutMs?: number): Promise<{ store: LocalMetadataStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lilio-meta-writer-'));
  const store = LocalMetadataStore.open({ path: dir, busyTimeoutMs });
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  await store.createBucket(bucketRecord(META_BUCKET));
  return { store, dir };
}

/** The longest the event loop went without running a 1 ms timer while `work` ran; and how long work took. */
async function stallDuring(work: () => Promise<unknown>): Promise<{ stall: number; took: number }> {
  let last = performance.now();
  let stall = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return { stall: Math.max(stall, performance.now() - last), took: performance.now() - started };
}

t.test("a long transaction runs in the writer thread: the caller's event loop keeps turning", async (t) => {
  const { store } = await openStore(t);
  // Starts the writer thread (a directory rename always runs there), so its start-up is not timed below.
  await store.renamePrefix(META_BUCKET, 'nothing/', 'nowhere/');
  const big = selfCheckingDraft('big', 50_000);
  const put = await stallDuring(() => store.putObject(big, 'absent'));
  t.ok(
    put.stall < put.took / 2,
    `commit of 50,000 chunks took ${put.took.toFixed(0)} ms, stalled ${put.stall.toFixed(0)} ms`,
  );
  const gone = await stallDuring(() => store.deleteObject(META_BUCKET, 'big'));
  t.ok(gone.stall < gone.took / 2, `its delete took ${gone.took.toFixed(0)} ms, stalled ${gone.stall.toFixed(0)} ms`);
  t.equal(await store.garbageCount(), 50_000, 'every chunk queued as garbage');
});

t.test('a write waiting for another connection lets the caller read, then lands', async (t) => {
  const { store, dir } = await openStore(t);
  await store.putObject(selfCheckingDraft('a', 1), 'absent');
  await store.renamePrefix(META_BUCKET, 'nothing/', 'nowhere/'); // starts the writer thread
  const other = new Database(join(dir, DB_FILE));
  t.teardown(() => other.close());
  other.prepare('BEGIN IMMEDIATE').run();
  let landed = false;
  const put = store.putObject(selfCheckingDraft('b', 1), 'absent').then((r) => {
    landed = true;
    return r;
  });
  let reads = 0;
  const { stall } = await stallDuring(async () => {
    for (let i = 0; i < 50; i++) {
      if (await store.getObject(META_BUCKET, 'a')) reads++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  });
  t.equal(reads, 50, 'every read answered');
  t.notOk(landed, 'the write waits while the lock is held');
  // Blocked, this thread would stall for the busy timeout (10 s); a loaded machine stalls it ~100 ms.
  t.ok(stall < 500, `reads went on (longest stall ${stall.toFixed(0)} ms)`);
  other.prepare('ROLLBACK').run();
  t.equal((await put).key, 'b');
  t.equal(recordProblem((await store.getObject(META_BUCKET, 'b'))!), undefined, 'and reads see it at once');
});

t.test('writes keep the order they were made in, wherever they run', async (t) => {
  const { store } = await openStore(t);
  // The first goes to the writer thread (long); the second is short and could commit here at once.
  const first = store.putObject(selfCheckingDraft('k', LONG), 'any');
  const second = store.putObject(selfCheckingDraft('k', 1), 'any');
  const [a, b] = await Promise.all([first, second]);
  t.ok(b.version > a.version, 'the second commit got the later version');
  t.equal((await store.getObject(META_BUCKET, 'k'))?.chunks.length, 1, 'and its record is the one that stays');
});

t.test('errors cross the thread as their own class; a failed request leaves the thread serving', async (t) => {
  const { store } = await openStore(t);
  const v1 = await store.putObject(selfCheckingDraft('k', LONG), 'absent');
  await t.rejects(store.putObject(selfCheckingDraft('k', LONG), { version: v1.version + 99 }), ConflictError);
  await t.rejects(store.renamePrefix('missing', 'a/', 'b/'), NotFoundError);
  await store.putObject(selfCheckingDraft('to/x', 1), 'absent');
  await store.putObject(selfCheckingDraft('from/x', 1), 'absent');
  await t.rejects(store.renamePrefix(META_BUCKET, 'from/', 'to/'), NotEmptyError);
  // Arguments that cannot cross to the thread: that call fails, nothing else.
  const uncloneable = { ...selfCheckingDraft('bad', LONG), extra: () => undefined };
  await t.rejects(store.putObject(uncloneable, 'any'), /could not be cloned/);
  t.equal(await store.renamePrefix(META_BUCKET, 'from/', 'moved/'), 1, 'the next request is served');
  const v2 = await store.putObject(selfCheckingDraft('k', LONG), { version: v1.version });
  t.ok(v2.version > v1.version);
});

t.test('close lets writes already sent finish, then refuses more', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lilio-meta-writer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = LocalMetadataStore.open({ path: dir });
  await store.createBucket(bucketRecord(META_BUCKET));
  const put = store.putObject(selfCheckingDraft('last', LONG), 'absent');
  await store.close();
  t.equal((await put).key, 'last', 'the write sent before close landed');
  await t.rejects(store.putObject(selfCheckingDraft('late', LONG), 'absent'), { code: 'UNAVAILABLE' });
  const again = LocalMetadataStore.open({ path: dir });
  t.teardown(() => again.close());
  t.equal(recordProblem((await again.getObject(META_BUCKET, 'last'))!), undefined, 'and is whole after a reopen');
});

for (const ending of ['close', 'leave'] as const) {
  t.test(`a process whose store started a writer thread exits by itself (${ending})`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lilio-meta-writer-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const env = builtChildEnv();
    const child = spawn(
      ...builtNode(['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'meta-writer-exit.ts'), dir, ending], env),
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (piece) => (out += piece));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.once('exit', (code, signal) => resolve([code, signal])),
    );
    clearTimeout(kill);
    t.equal(out, 'written\n');
    t.same({ code, signal }, { code: 0, signal: null }, 'it exited on its own, cleanly');
  });
}
