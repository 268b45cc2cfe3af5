import { randomBytes } from 'node:crypto';
import t from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import type { MemoryBackend } from '../../src/backends/memory.js';
import { EtcdMetadataStore } from '../../src/meta/etcd.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';
import { startEtcd } from '../fixtures/etcd.js';

// Sessions on etcd (leases), through the engine: a long write and a long read survive gc with
// no grace period, and a process that stops renewing has what it wrote collected once its
// lease is gone.

const etcd = await startEtcd(t);
const CHUNK = 64 * 1024;
const everything = { graceMs: 0 };

function etcdStore(): EtcdMetadataStore {
  return new EtcdMetadataStore({
    endpoints: etcd.endpoints,
    prefix: `/sessions-${randomBytes(4).toString('hex')}`,
    dialTimeoutMs: 2_000,
    requestTimeoutMs: 5_000,
    maxTxnOps: 128,
  });
}

async function stored(stores: Map<string, MemoryBackend>): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const store of stores.values()) for await (const id of store.list()) ids.add(id);
  return ids;
}

t.test('etcd: gc during a long write and a long read deletes nothing in use', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 }, { meta: etcdStore() });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const v1 = pattern(3 * CHUNK, 1);
  await lilio.putObject('bkt', 'read', pieces(v1));
  const reader = lilio.readObject(await lilio.openObject('bkt', 'read'));
  const first = await reader.next();

  const writer = await lilio.writer('bkt', 'write');
  const data = pattern(4 * CHUNK, 2);
  await writer.write(data);
  await lilio.chunks.drain();
  await lilio.session.flush();
  await lilio.putObject('bkt', 'read', pieces(pattern(CHUNK, 3)));
  t.equal(await lilio.meta.garbageCount(), 3, 'the overwritten version is queued (write holds are not counted)');

  t.equal((await lilio.collectGarbage(everything)).deleted, 0, 'nothing held is handed out');
  t.match(await collectOrphans(lilio, everything), { orphans: 0, held: 4 });
  t.match(await lilio.meta.listSessions(), [{ pid: process.pid, heldChunks: 7 }]);

  const parts = [first.value as Buffer];
  for (let next = await reader.next(); !next.done; next = await reader.next()) parts.push(next.value);
  t.same(Buffer.concat(parts), v1, 'the long read got the whole old version');
  await writer.commit();
  t.same(await collect(lilio.getObject('bkt', 'write')), data, 'the long write committed intact');
  t.equal((await lilio.collectGarbage(everything)).deleted, 3, 'released: the old version goes');
  t.equal((await stored(stores)).size, 5, 'the live versions stay');
});

t.test('etcd: a session whose lease runs out has its uncommitted chunks collected', async (t) => {
  const meta = etcdStore();
  const { lilio, stores } = await testEngine(
    { chunkSize: CHUNK, inlineThreshold: 0, sessions: { ttlSeconds: 1 } },
    { meta },
  );
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const writer = await lilio.writer('bkt', 'w');
  await writer.write(pattern(2 * CHUNK));
  await lilio.chunks.drain();
  await lilio.session.flush();
  t.equal((await lilio.collectGarbage(everything)).deleted, 0);
  t.equal((await stored(stores)).size, 2);

  // The process freezes: no more keepalives.
  (meta as MetadataStore).renewSession = async () => true;
  for (let waited = 0; waited < 10_000 && (await meta.listSessions()).length > 0; waited += 200) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.same(await meta.listSessions(), [], 'the lease expired');
  // Its lease key is gone from etcd a little after the recorded expiry.
  let deleted = 0;
  for (let tries = 0; tries < 20 && deleted === 0; tries++) {
    deleted = (await lilio.collectGarbage(everything)).deleted;
    if (deleted === 0) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  t.equal(deleted, 2, 'reaped: what it wrote and never committed is collected');
  t.equal((await stored(stores)).size, 0);
  await writer.abort();
});
