import t from 'tap';
import { rebalance } from '../../src/admin/rebalance.js';
import type { StorageBackend } from '../../src/backends/backend.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { ConflictError } from '../../src/core/errors.js';
import { HashRing } from '../../src/core/ring.js';
import type { ObjectDraft, ObjectRecord } from '../../src/core/types.js';
import { Lilio } from '../../src/engine/lilio.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import type { Expect } from '../../src/meta/store.js';
import { collect, pattern, pieces, testConfig } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;
const N = 2;

async function held(backend: StorageBackend): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const id of backend.list()) ids.add(id);
  return ids;
}

function engine(stores: MemoryBackend[], meta: MemoryMetadataStore): Promise<Lilio> {
  const config = testConfig(
    {
      chunkSize: CHUNK,
      inlineThreshold: 0,
      quorum: { n: N, w: 2, r: 1 },
      storages: stores.map((s) => ({ name: s.name, type: 'memory' as const })),
    },
    stores.length,
  );
  return Lilio.open(config, { backends: stores, meta });
}

/** Three memory backends holding three objects written with N=2, and their store. */
async function written(meta = new MemoryMetadataStore()) {
  const stores = [1, 2, 3].map((i) => new MemoryBackend({ name: `mem-${i}` }));
  const before = await engine(stores, meta);
  await before.createBucket('bkt1');
  const contents = new Map<string, Buffer>();
  for (const [key, chunks] of [
    ['a', 40],
    ['b', 25],
    ['c', 1],
  ] as const) {
    const data = pattern(chunks * CHUNK - 3, chunks);
    contents.set(key, data);
    await before.putObject('bkt1', key, pieces(data));
  }
  await before.chunks.drain();
  // Not closed: it would close the shared metadata store. Its backends are plain memory.
  return { stores, meta, contents };
}

async function records(lilio: Lilio): Promise<ObjectRecord[]> {
  const out: ObjectRecord[] = [];
  for await (const r of lilio.meta.iterateObjects('bkt1')) out.push(r);
  return out;
}

t.test('adding a backend moves only the chunks whose placement changed', async (t) => {
  const { stores, meta, contents } = await written();
  const grown = [...stores, new MemoryBackend({ name: 'mem-4' })];
  const lilio = await engine(grown, meta);
  t.teardown(() => lilio.close());
  const ring = new HashRing(
    grown.map((s) => s.name),
    150,
  );
  const old = await records(lilio);
  const all = old.flatMap((r) => r.chunks);
  const changed = all.filter((c) => {
    const target = ring.place(c.id, N);
    return target.some((n) => !c.replicas.includes(n));
  });
  t.ok(changed.length > 0 && changed.length < all.length, `${changed.length} of ${all.length} placements changed`);

  const dry = await rebalance(lilio, { dryRun: true });
  t.match(dry, { dryRun: true, chunks: all.length, moved: changed.length, objectsUpdated: 0 });
  t.equal((await held(grown[3]!)).size, 0, 'a dry run copies nothing');
  t.same(await records(lilio), old, 'and commits nothing');

  const report = await rebalance(lilio);
  t.match(report, { moved: changed.length, failures: [] });
  t.equal(report.replicasCopied, report.replicasQueued, 'one new replica per retired one');
  t.equal((await held(grown[3]!)).size, report.replicasCopied, 'mem-4 holds exactly the copies');
  for (const record of await records(lilio)) {
    for (const chunk of record.chunks) {
      t.same(new Set(chunk.replicas), new Set(ring.place(chunk.id, N)), 'recorded replicas follow the ring');
    }
    t.ok((await collect(lilio.getObject('bkt1', record.key))).equals(contents.get(record.key)!), `${record.key} reads`);
  }
  const again = await rebalance(lilio);
  t.equal(again.moved, 0, 'a second run moves nothing');

  // The old replicas stay until the grace period is over, then gc takes them.
  const total = async () => {
    let n = 0;
    for (const s of grown) n += (await held(s)).size;
    return n;
  };
  t.equal(await total(), all.length * N + report.replicasQueued, 'old replicas kept for readers of the old version');
  await lilio.collectGarbage({ graceMs: 0 });
  t.equal(await total(), all.length * N, 'after gc: exactly N replicas per chunk');
  for (const record of await records(lilio)) {
    for (const chunk of record.chunks) {
      for (const name of chunk.replicas) t.ok((await held(grown.find((s) => s.name === name)!)).has(chunk.id));
    }
  }
});

t.test('removing a backend re-places its chunks from the surviving replicas', async (t) => {
  const { stores, meta, contents } = await written();
  const shrunk = stores.slice(0, 2);
  const lilio = await engine(shrunk, meta);
  t.teardown(() => lilio.close());
  const onRemoved = (await records(lilio)).flatMap((r) => r.chunks).filter((c) => c.replicas.includes('mem-3'));
  t.ok(onRemoved.length > 0);
  const report = await rebalance(lilio);
  t.match(report, { moved: onRemoved.length, replicasLeft: onRemoved.length, replicasQueued: 0, failures: [] });
  for (const record of await records(lilio)) {
    for (const chunk of record.chunks) t.same([...chunk.replicas].sort(), ['mem-1', 'mem-2']);
    t.ok((await collect(lilio.getObject('bkt1', record.key))).equals(contents.get(record.key)!));
  }
});

t.test('a commit racing the rebalance wins; the object is planned again and both changes stand', async (t) => {
  /** Commits a chmod of the object just before rebalance's first compare-and-set on it. */
  class RacingStore extends MemoryMetadataStore {
    raced = 0;
    override async putObject(draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
      if (this.raced === 0 && typeof expect === 'object') {
        this.raced++;
        const current = (await this.getObject(draft.bucket, draft.key))!;
        const { version: _v, ...rest } = current;
        await super.putObject({ ...rest, attrs: { ...rest.attrs, mode: 0o600 } }, 'any');
        await t.rejects(super.putObject(draft, expect), ConflictError, 'the stale commit loses');
        throw new ConflictError('raced');
      }
      return super.putObject(draft, expect);
    }
  }
  const meta = new RacingStore();
  const { stores, contents } = await written(meta);
  const lilio = await engine([...stores, new MemoryBackend({ name: 'mem-4' })], meta);
  t.teardown(() => lilio.close());
  const report = await rebalance(lilio, { bucket: 'bkt1' });
  t.equal(meta.raced, 1);
  t.same(report.failures, []);
  const a = (await lilio.meta.getObject('bkt1', 'a'))!;
  t.equal(a.attrs.mode, 0o600, 'the racing chmod survived');
  t.ok(report.objectsUpdated >= 2, 'a and b (40 and 25 chunks) certainly moved some');
  t.ok((await collect(lilio.getObject('bkt1', 'a'))).equals(contents.get('a')!));
  t.equal((await rebalance(lilio)).moved, 0, 'and the placement was still applied');
});
