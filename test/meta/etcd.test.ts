import { randomBytes } from 'node:crypto';
import { Etcd3, GRPCUnavailableError } from 'etcd3';
import t, { type Test } from 'tap';
import { EtcdMetadataStore } from '../../src/meta/etcd.js';
import type { EtcdStoreOptions } from '../../src/meta/etcd-client.js';
import { metaContract } from '../contracts/meta.js';
import { differential } from '../contracts/meta-differential.js';
import { bucketRecord, chunkRef, objectDraft } from '../contracts/meta-fixtures.js';
import { startEtcd } from '../fixtures/etcd.js';

const etcd = await startEtcd(t);

export function storeOptions(prefix: string, overrides: Partial<EtcdStoreOptions> = {}): EtcdStoreOptions {
  return {
    endpoints: etcd.endpoints,
    prefix,
    dialTimeoutMs: 2_000,
    requestTimeoutMs: 5_000,
    maxTxnOps: 128,
    ...overrides,
  };
}

/** Deletes everything under a prefix (each store in this file gets its own). */
async function wipe(prefix: string): Promise<void> {
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    await client.delete().prefix(`${prefix}/`);
  } finally {
    client.close();
  }
}

metaContract(t, async () => {
  const prefix = `/contract-${randomBytes(4).toString('hex')}`;
  return { store: new EtcdMetadataStore(storeOptions(prefix)), cleanup: () => wipe(prefix) };
});

function fresh(t: Test, overrides: Partial<EtcdStoreOptions> = {}): { store: EtcdMetadataStore; prefix: string } {
  const prefix = `/t-${randomBytes(4).toString('hex')}`;
  const store = new EtcdMetadataStore(storeOptions(prefix, overrides));
  t.teardown(async () => {
    await store.close();
    await wipe(prefix);
  });
  return { store, prefix };
}

/** Keys under a prefix, by the part of the layout they belong to (p: list pages, q: pending lists, j: journal...). */
async function keysUnder(prefix: string): Promise<Map<string, number>> {
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const keys = await client.getAll().prefix(`${prefix}/`).keys();
    const counts = new Map<string, number>();
    for (const key of keys) {
      const part = key.slice(prefix.length + 1).split('/')[0]!;
      counts.set(part, (counts.get(part) ?? 0) + 1);
    }
    return counts;
  } finally {
    client.close();
  }
}

t.test('differential: random operations leave etcd where the memory store is', async (t) => {
  const { store } = fresh(t);
  await differential(t, store, { seed: 4242, steps: 400, ignoreVersions: true });
});

t.test('a record of 100,000 chunks under etcd default limits: commit, read, list, replace, rename', async (t) => {
  // Limits, not latency, are under test: on a loaded 2-core machine a step past 100,000 chunks (the
  // journal draining after the renames) can outlast the usual 5 s deadline.
  const { store, prefix } = fresh(t, { requestTimeoutMs: 30_000 });
  await store.createBucket(bucketRecord('photos'));
  const chunks = Array.from({ length: 100_000 }, () => chunkRef(1 << 20));
  const v1 = await store.putObject(objectDraft('photos', 'big/huge.iso', { chunks }), 'absent');
  t.strictSame(await store.getObject('photos', 'big/huge.iso'), v1, 'read back whole');
  const [summary] = (await store.list('photos', { prefix: 'big/', delimiter: '/' })).objects;
  t.equal(summary?.size, 100_000 * (1 << 20), 'listed with its size, without its chunks');
  t.notOk(summary && 'chunks' in summary);
  t.ok((await keysUnder(prefix)).get('p')! > 1, 'the chunk list is split into pages');

  // Keep 99,000 chunks, drop 1,000, add 10: more than one transaction can queue.
  const next = [...chunks.slice(1000), ...Array.from({ length: 10 }, () => chunkRef(1 << 20))];
  const v2 = await store.putObject(objectDraft('photos', 'big/huge.iso', { chunks: next }), { version: v1.version });
  t.equal(await store.garbageCount(), 1000, 'exactly the dropped chunks are queued');
  const queued = new Set((await store.peekGarbage(undefined, 10_000)).map((g) => g.chunk.id));
  t.ok(
    chunks.slice(0, 1000).every((c) => queued.has(c.id)),
    'the dropped ones',
  );
  const pages = (await keysUnder(prefix)).get('p');
  const { version: _v, ...sameChunks } = { ...v2, attrs: { ...v2.attrs, mode: 0o600 } };
  const v3 = await store.putObject(sameChunks, { version: v2.version });
  t.equal((await keysUnder(prefix)).get('p'), pages, 'an attribute change reuses the pages');
  t.equal(v3.attrs.mode, 0o600);

  const moved = await store.renameObject('photos', 'big/huge.iso', 'moved/huge.iso', { replace: false });
  await store.renamePrefix('photos', 'moved/', 'final/');
  const final = await store.getObject('photos', 'final/huge.iso');
  t.strictSame(final, { ...moved, key: 'final/huge.iso', version: final!.version }, 'renames keep the whole list');
  t.equal(await store.garbageCount(), 1000, 'renames free nothing');
  const iterated: number[] = [];
  for await (const record of store.iterateObjects('photos')) iterated.push(record.chunks.length);
  t.same(iterated, [next.length], 'iterateObjects brings the whole list');
});

async function allGarbage(store: EtcdMetadataStore): Promise<Set<string>> {
  const ids = new Set<string>();
  let after: string | undefined;
  for (
    let page = await store.peekGarbage(after, 10_000);
    page.length > 0;
    page = await store.peekGarbage(after, 10_000)
  ) {
    for (const g of page) ids.add(g.chunk.id);
    after = page.at(-1)!.chunk.id;
  }
  return ids;
}

t.test('two writers commit one big object at once: the last wins whole, the other is garbage', async (t) => {
  const { store: first, prefix } = fresh(t);
  const second = new EtcdMetadataStore(storeOptions(prefix));
  t.teardown(() => second.close());
  await first.createBucket(bucketRecord('photos'));
  // Each list is far beyond one transaction, so both commits go through pages and the journal.
  const base = await first.putObject(objectDraft('photos', 'race.bin', { chunks: chunkList(3000) }), 'absent');
  const lists = [chunkList(5000), chunkList(5000)];
  const results = await Promise.all(
    [first, second].map((store, i) => store.putObject(objectDraft('photos', 'race.bin', { chunks: lists[i]! }), 'any')),
  );
  const winner = results[0]!.version > results[1]!.version ? 0 : 1;
  t.strictSame(await second.getObject('photos', 'race.bin'), results[winner], 'the last commit wins, untorn');
  t.strictSame(await first.getObject('photos', 'race.bin'), results[winner]);
  const garbage = await allGarbage(first);
  t.ok(
    lists[1 - winner]!.every((c) => garbage.has(c.id)),
    "the loser's chunks are queued",
  );
  t.ok(
    base.chunks.every((c) => garbage.has(c.id)),
    'so are the replaced version’s',
  );
  t.notOk(
    lists[winner]!.some((c) => garbage.has(c.id)),
    "none of the winner's",
  );
  t.equal(garbage.size, 8000);

  // A compare-and-set against the same base: exactly one wins, the other conflicts and changes nothing.
  const current = (await first.getObject('photos', 'race.bin'))!;
  const tries = await Promise.allSettled(
    [first, second].map((store) =>
      store.putObject(objectDraft('photos', 'race.bin', { chunks: chunkList(2000) }), { version: current.version }),
    ),
  );
  t.same(tries.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  t.match(
    tries.find((r) => r.status === 'rejected'),
    { reason: { code: 'CONFLICT' } },
  );

  const removed = await first.deleteObject('photos', 'race.bin');
  t.equal(removed?.chunks.length, 2000);
  const total = await second.garbageCount();
  t.equal(total, 8000 + 5000 + 2000, 'delete queues the rest');
  let taken = 0;
  for (let batch = await first.takeGarbage(Date.now() + 60_000, 5000); batch.length > 0; ) {
    taken += batch.length;
    batch = await second.takeGarbage(Date.now() + 60_000, 5000);
  }
  t.equal(taken, total, 'every queued chunk is handed out once');
  const left = await keysUnder(prefix);
  const parts = ['p', 'q', 'j', 'g', 'e', 'x'];
  t.same(
    parts.map((part) => [part, left.get(part) ?? 0]),
    parts.map((part) => [part, 0]),
    'no pages, pending lists, journal, garbage or entries are left behind',
  );
});

function chunkList(n: number) {
  return Array.from({ length: n }, () => chunkRef(1 << 20));
}

t.test('a commit whose answer is lost is recognised as applied when retried', async (t) => {
  const { store } = fresh(t);
  await store.createBucket(bucketRecord('photos'));
  // The transaction is applied, then the answer "fails": what a member dying right after a commit does.
  const kv = (store as unknown as { conn: { client: Etcd3 } }).conn.client.kv;
  const real = kv.txn.bind(kv);
  let lose = 0;
  kv.txn = async (request, options) => {
    const response = await real(request, options);
    const writes = (request.success ?? []).some((op) => op.request_put || op.request_delete_range);
    if (writes && lose > 0) {
      lose--;
      throw new GRPCUnavailableError('14 UNAVAILABLE: simulated loss of the answer');
    }
    return response;
  };
  lose = 1;
  const created = await store.putObject(objectDraft('photos', 'a/file'), 'absent');
  t.strictSame(await store.getObject('photos', 'a/file'), created, "'absent' put: not a conflict with itself");
  lose = 1;
  const moved = await store.renameObject('photos', 'a/file', 'b/file', { replace: false });
  t.strictSame(await store.getObject('photos', 'b/file'), moved, 'rename: not "source missing"');
  lose = 1;
  t.equal(await store.renamePrefix('photos', 'b/', 'c/'), 1, 'renamePrefix: counts what it moved');
  lose = 1;
  const current = (await store.getObject('photos', 'c/file'))!;
  t.strictSame(
    await store.deleteObject('photos', 'c/file', { version: current.version }),
    current,
    'delete: returns the record',
  );
  lose = 1;
  await store.createBucket(bucketRecord('docs'));
  t.ok(await store.getBucket('docs'), 'createBucket: not "exists"');
  t.equal(lose, 0, 'every simulated loss was met');
});

t.test('stores on one etcd see each other: generation by watch, close-to-open reads', async (t) => {
  const { store: a, prefix } = fresh(t);
  const b = new EtcdMetadataStore(storeOptions(prefix));
  t.teardown(() => b.close());
  await a.createBucket(bucketRecord('photos'));
  const until = async (what: string, check: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const steady = (store: EtcdMetadataStore) => {
    const generation = store.generation();
    return store.generation() === generation;
  };
  await until('both watches are up', () => steady(a) && steady(b));
  const before = b.generation();
  t.equal(b.generation(), before, 'stable while nothing happens');
  const put = await a.putObject(objectDraft('photos', 'shared/k'), 'absent');
  await until("b's generation moves with a's commit", () => b.generation() !== before);
  t.strictSame(await b.getObject('photos', 'shared/k'), put, 'b reads what a committed');
  // Bucket records are cached while the watch is up, and dropped when it reports a change.
  t.ok(await b.getBucket('photos'));
  const read = (await a.getBucket('photos'))!;
  await a.updateBucket(read, { ...read.attrs, mode: 0o701 });
  await until("b's cached bucket record is replaced", async () => (await b.getBucket('photos'))?.attrs.mode === 0o701);
  // A watch cancelled by etcd (e.g. its revision was compacted): untrusted until re-established.
  const feed = (b as unknown as { feed: { watcher: { emit(e: string, err: Error): void } } }).feed;
  feed.watcher.emit('error', new Error('simulated: watch cancelled'));
  t.notOk(steady(b), 'while the watch is down every call answers a new generation');
  await until('the watch is back', () => steady(b));
  const settled = b.generation();
  await a.deleteObject('photos', 'shared/k');
  await until('events flow again', () => b.generation() !== settled);
  t.equal(await b.getObject('photos', 'shared/k'), undefined);
});

t.test('listing one level reads that level, not what lies below it', async (t) => {
  const { store } = fresh(t);
  await store.createBucket(bucketRecord('photos'));
  for (let i = 0; i < 3; i++) await store.putObject(objectDraft('photos', `top${i}`), 'any');
  await Promise.all(
    Array.from({ length: 200 }, (_, i) => store.putObject(objectDraft('photos', `deep/d${i % 20}/f${i}`), 'any')),
  );
  const kv = (store as unknown as { conn: { client: Etcd3 } }).conn.client.kv;
  const real = kv.txn.bind(kv);
  let returned = 0;
  kv.txn = async (request, options) => {
    const response = await real(request, options);
    for (const r of response.responses) returned += r.response_range?.kvs.length ?? 0;
    return response;
  };
  const page = await store.list('photos', { delimiter: '/' });
  t.same([page.objects.map((o) => o.key), page.prefixes], [['top0', 'top1', 'top2'], ['deep/']]);
  t.ok(returned <= 6, `the root level cost ${returned} key-values (its 4 entries, the bucket)`);
  returned = 0;
  const deep = await store.list('photos', { prefix: 'deep/', delimiter: '/', limit: 5 });
  t.equal(deep.prefixes.length, 5);
  t.ok(returned <= 10, `a page of 5 of deep/'s 20 directories cost ${returned} key-values`);
  returned = 0;
  const moved = await store.renamePrefix('photos', 'deep/', 'moved/');
  t.equal(moved, 200);
  t.equal((await store.list('photos', { prefix: 'moved/d3/', delimiter: '/' })).objects.length, 10);
});

t.test('keys deeper than a transaction can check are refused as too long', async (t) => {
  const { store } = fresh(t);
  await store.createBucket(bucketRecord('photos'));
  const deep = (levels: number) => `${Array.from({ length: levels }, (_, i) => `d${i}`).join('/')}/file`;
  const ok = await store.putObject(objectDraft('photos', deep(56)), 'absent');
  t.strictSame(await store.getObject('photos', ok.key), ok, '56 directories deep: fine');
  await t.rejects(store.putObject(objectDraft('photos', deep(57)), 'absent'), { code: 'NAME_TOO_LONG' });
  await t.rejects(store.getObject('photos', deep(80)), { code: 'NAME_TOO_LONG' });
});
