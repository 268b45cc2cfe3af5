import { pino } from 'pino';
import t, { type Test } from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import type { MemoryBackend } from '../../src/backends/memory.js';
import { Lilio } from '../../src/engine/lilio.js';
import { collectStatus } from '../../src/engine/status.js';
import { Vfs } from '../../src/fs/vfs.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { collect, pattern, pieces, type TestEngine, testConfig, testEngine } from '../fixtures/engine.js';

// Garbage collection with sessions: nothing a live process writes or reads is deleted, whatever
// the grace period (0 here, so only the holds stand between a chunk and its deletion), and what
// is released afterwards is collected.

const CHUNK = 64 * 1024;
const O_RDONLY = 0;

/** Chunk ids on every backend. */
async function stored(stores: Map<string, MemoryBackend>): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const store of stores.values()) for await (const id of store.list()) ids.add(id);
  return ids;
}

/** Another process on the same metadata store and backends (it leaves closing them to the first). */
async function secondProcess(t: Test, first: TestEngine): Promise<Lilio> {
  const other = await Lilio.open(testConfig({ chunkSize: CHUNK, inlineThreshold: 0 }), {
    backends: [...first.faults.values()].map(unclosable),
    meta: unclosable(first.meta),
    role: 'second',
  });
  t.teardown(() => other.close());
  return other;
}

/** Stores and backends shared with another engine: only their owner closes them. */
function unclosable<T extends object>(backend: T): T {
  return new Proxy(backend, {
    get(target, prop) {
      if (prop === 'close') return async () => undefined;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const everything = { graceMs: 0 };

t.test('gc during a long write deletes nothing it has sealed; after the commit the file reads back', async (t) => {
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  const { lilio, stores } = engine;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const data = pattern(5 * CHUNK + 100, 7);
  const writer = await lilio.writer('bkt', 'long');
  await writer.write(data.subarray(0, 5 * CHUNK));
  await lilio.chunks.drain();
  await lilio.session.flush();
  const sealed = await stored(stores);
  t.equal(sealed.size, 5, 'five chunks sealed, none committed');

  const gc = await lilio.collectGarbage(everything);
  const orphans = await collectOrphans(lilio, everything);
  t.match(orphans, { orphans: 0, held: 5 }, 'the orphan scan sees them held');
  t.equal(gc.deleted, 0);
  t.same(await stored(stores), sealed, 'every sealed chunk is still there');
  const [session] = await lilio.meta.listSessions();
  t.match(session, { pid: process.pid, heldChunks: 5 });

  await writer.write(data.subarray(5 * CHUNK));
  const record = await writer.commit();
  t.same(await lilio.meta.heldChunkIds(), new Set(), 'the commit ended the write holds');
  t.same(await collect(lilio.getObject('bkt', 'long')), data);
  await lilio.collectGarbage(everything);
  await collectOrphans(lilio, everything);
  t.equal((await stored(stores)).size, record.chunks.length, 'nothing of the file was collected');
});

t.test('an aborted write releases its holds; a second process collects nothing in use', async (t) => {
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  const { lilio, stores } = engine;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const writer = await lilio.writer('bkt', 'aborted');
  await writer.write(pattern(3 * CHUNK));
  await lilio.chunks.drain();
  await lilio.session.flush();
  const other = await secondProcess(t, engine);
  await other.collectGarbage(everything);
  t.match(await collectOrphans(other, everything), { orphans: 0, held: 3 });
  await writer.abort();
  t.same(await lilio.meta.heldChunkIds(), new Set(), 'discarded chunks are held no more');
  t.equal((await stored(stores)).size, 0, 'and deleted by the writer itself');
});

t.test('a long read of an overwritten version keeps its chunks until released', async (t) => {
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  const { lilio, stores } = engine;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const v1 = pattern(4 * CHUNK, 1);
  await lilio.putObject('bkt', 'k', pieces(v1));
  const reader = await lilio.openObject('bkt', 'k');
  const stream = lilio.readObject(reader);
  const first = await stream.next();
  t.notOk(first.done, 'the read has started');
  // Holds of reads reach the store once a read lasts past readHoldDelayMs; this one has.
  await lilio.session.flush();

  const other = await secondProcess(t, engine);
  await other.putObject('bkt', 'k', pieces(pattern(CHUNK, 2)));
  t.equal((await other.collectGarbage(everything)).deleted, 0, 'the version being read is not collected');
  await collectOrphans(other, everything);
  const parts = [first.value as Buffer];
  for (let next = await stream.next(); !next.done; next = await stream.next()) parts.push(next.value);
  t.same(Buffer.concat(parts), v1, 'the whole old version was read');

  t.equal((await other.collectGarbage(everything)).deleted, 4, 'released at the end of the read: collected');
  t.equal((await stored(stores)).size, 1);
});

t.test('a file open on the mount keeps an overwritten or unlinked version readable', async (t) => {
  // A short ttl: renewals (every 333 ms) report the open files.
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0, sessions: { ttlSeconds: 1 } });
  const { lilio, stores } = engine;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const vfs = new Vfs(lilio, { readOnly: false, maxDirtyBuffers: 8, sealsInFlight: 2 });
  const old = pattern(3 * CHUNK, 3);
  await lilio.putObject('bkt', 'kept', pieces(old));
  await lilio.putObject('bkt', 'gone', pieces(old));
  const kept = await vfs.open('/bkt/kept', O_RDONLY);
  const gone = await vfs.open('/bkt/gone', O_RDONLY);
  await lilio.session.flush();

  const other = await secondProcess(t, engine);
  await other.putObject('bkt', 'kept', pieces(pattern(CHUNK, 4)));
  await vfs.unlink('/bkt/gone');
  t.equal((await other.collectGarbage(everything)).deleted, 0, 'neither open version is collected');
  t.equal((await collectOrphans(other, everything)).orphans, 0);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const status = await collectStatus(other);
  t.match(status.sessions, [{ pid: process.pid, openFiles: 2, heldChunks: 6 }], 'status lists the holder');

  for (const fd of [kept, gone]) {
    const buf = Buffer.alloc(old.length);
    let got = 0;
    while (got < buf.length) {
      const n = await vfs.read(fd, buf.subarray(got), buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    t.same(buf.subarray(0, got), old, 'the open file reads its version in full');
  }
  await vfs.release(kept);
  await vfs.release(gone);
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal((await other.collectGarbage(everything)).deleted, 6, 'closed: both old versions are collected');
  t.equal((await stored(stores)).size, 1, 'only the new version of kept is left');
});

t.test('a short read writes nothing to the store; a read that lasts records its hold', async (t) => {
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  const { lilio } = engine;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  await lilio.putObject('bkt', 'k', pieces(pattern(2 * CHUNK)));
  let holds = 0;
  const holdRead = lilio.meta.holdRead.bind(lilio.meta);
  lilio.meta.holdRead = (session, ids) => {
    holds++;
    return holdRead(session, ids);
  };
  for (let i = 0; i < 20; i++) await collect(lilio.getObject('bkt', 'k'));
  t.equal(holds, 0, 'twenty quick GETs, no hold written');
  const slow = lilio.getObject('bkt', 'k');
  await slow.next();
  await new Promise((resolve) => setTimeout(resolve, 700));
  t.equal(holds, 1, 'a GET still running after the delay is held in the store');
  t.equal((await lilio.meta.heldChunkIds()).size, 2);
  await collect(slow);
  t.equal((await lilio.meta.heldChunkIds()).size, 0, 'and released when it ends');
});

t.test('a session that stops renewing loses its holds; one that renews recovers them', async (t) => {
  // The engine's warnings go to its logger: kept here to be read.
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0, sessions: { ttlSeconds: 1 } }, { logger });
  const { lilio } = engine;
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt');
  const writer = await lilio.writer('bkt', 'w');
  await writer.write(pattern(2 * CHUNK));
  await lilio.chunks.drain();
  await lilio.session.flush();
  const before = (await lilio.meta.listSessions())[0]!;
  // The process stalls past its ttl (its renewals are blocked), and another process reaps it.
  const meta = lilio.meta as MetadataStore & { renewSession: MetadataStore['renewSession'] };
  const renew = meta.renewSession.bind(meta);
  meta.renewSession = async () => true;
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  t.equal(await meta.reapSessions(), 1, 'reaped');
  t.equal(await meta.garbageCount(), 2, 'its uncommitted chunks are queued');
  meta.renewSession = renew;
  for (let waited = 0; (await meta.listSessions()).length === 0 && waited < 3_000; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const after = (await meta.listSessions())[0];
  t.not(after?.id, before.id, 'a new session was opened');
  t.equal(after?.heldChunks, 2, 'and the write holds recorded again');
  t.equal(await meta.garbageCount(), 0, 'which takes them off the queue');
  t.match(String(warnings[0]), /expired; opened .* recorded its 2 write and 0 read holds again/);
  await writer.write(pattern(100, 9));
  await writer.commit();
  t.same(await collect(lilio.getObject('bkt', 'w')), Buffer.concat([pattern(2 * CHUNK), pattern(100, 9)]));
});
