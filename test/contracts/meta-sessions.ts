import type { Test } from 'tap';
import type { MetadataStore, SessionInfo } from '../../src/meta/store.js';
import type { FreshStore } from './meta.js';
import { chunkRef, FUTURE, objectDraft } from './meta-fixtures.js';

/**
 * Sessions and holds, as every store must keep them: the part of the contract
 * that lets garbage collection never delete a chunk in use.
 */

const info = (role = 'test'): SessionInfo => ({ pid: process.pid, host: 'here', role, startedAt: Date.now() });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const takeAll = async (store: MetadataStore) => (await store.takeGarbage(FUTURE(), 1000)).map((g) => g.chunk.id).sort();

export function sessionsContract(t: Test, fresh: FreshStore): void {
  t.test('sessions: open, renew, list, close', async (t) => {
    const store = await fresh(t);
    const a = await store.openSession(info('mount /mnt'), 60_000);
    const b = await store.openSession(info('server'), 60_000);
    t.not(a, b);
    t.ok(await store.renewSession(a, 60_000, 3));
    const listed = await store.listSessions();
    t.same(listed.map((s) => s.id).sort(), [a, b].sort());
    const mine = listed.find((s) => s.id === a)!;
    t.match(mine, { pid: process.pid, host: 'here', role: 'mount /mnt', openFiles: 3, heldChunks: 0 });
    t.ok(mine.expiresAt > Date.now() + 50_000);
    await store.closeSession(a);
    t.same(
      (await store.listSessions()).map((s) => s.id),
      [b],
    );
    t.equal(await store.renewSession(a, 60_000, 0), false, 'a closed session cannot be renewed');
    await t.rejects(store.holdRead(a, ['x']), { code: 'NOT_FOUND' });
    await t.rejects(store.holdWrites(a, [chunkRef()]), { code: 'NOT_FOUND' });
  });

  t.test('holds: takeGarbage skips held chunks until they are released', async (t) => {
    const store = await fresh(t);
    const session = await store.openSession(info(), 60_000);
    const old = await store.putObject(objectDraft('photos', 'a', { chunks: [chunkRef(), chunkRef()] }), 'any');
    const read = await store.holdRead(
      session,
      old.chunks.map((c) => c.id),
    );
    await store.putObject(objectDraft('photos', 'a'), 'any');
    t.equal(await store.garbageCount(), 2, 'the old version is queued');
    t.same(await takeAll(store), [], 'but held by a reader: nothing handed out');
    t.equal(await store.garbageCount(), 2, 'and nothing lost from the queue');
    t.same(await store.heldChunkIds(), new Set(old.chunks.map((c) => c.id)));
    t.equal((await store.listSessions())[0]!.heldChunks, 2);
    await store.releaseRead(session, read);
    t.same(await takeAll(store), old.chunks.map((c) => c.id).sort(), 'released: handed out');
  });

  t.test('write holds: a commit clears them, closing queues the rest', async (t) => {
    const store = await fresh(t);
    const session = await store.openSession(info(), 60_000);
    const [kept, dropped, discarded] = [chunkRef(), chunkRef(), chunkRef()];
    await store.holdWrites(session, [kept!, dropped!, discarded!]);
    t.same(await store.heldChunkIds(), new Set([kept!.id, dropped!.id, discarded!.id]));
    await store.putObject(objectDraft('photos', 'w', { chunks: [kept!] }), 'absent');
    await store.releaseWrites(session, [discarded!.id]);
    t.same(await store.heldChunkIds(), new Set([dropped!.id]), 'committed and released chunks are no longer held');
    t.equal(await store.garbageCount(), 0);
    await store.closeSession(session);
    t.same(await store.heldChunkIds(), new Set());
    t.same(await takeAll(store), [dropped!.id], 'only the never-committed chunk becomes garbage');
  });

  t.test('write holds: renames and later commits never bring a committed chunk back', async (t) => {
    const store = await fresh(t);
    const session = await store.openSession(info(), 60_000);
    const chunk = chunkRef();
    await store.holdWrites(session, [chunk]);
    await store.putObject(objectDraft('photos', 'dir/f', { chunks: [chunk] }), 'any');
    await store.renameObject('photos', 'dir/f', 'dir/g', { replace: false });
    await store.renamePrefix('photos', 'dir/', 'moved/');
    await store.closeSession(session);
    t.equal(await store.garbageCount(), 0, 'a committed chunk is never queued by its session ending');
  });

  t.test('holding a queued chunk for writing takes it off the queue', async (t) => {
    const store = await fresh(t);
    const session = await store.openSession(info(), 60_000);
    const chunk = chunkRef();
    await store.queueGarbage([{ chunk, queuedAt: 1 }]);
    await store.holdWrites(session, [chunk]);
    t.equal(await store.garbageCount(), 0);
    t.same(await takeAll(store), []);
  });

  t.test('expiry: an expired session holds nothing and is reaped into garbage', async (t) => {
    const store = await fresh(t);
    const short = await store.openSession(info('killed'), 1_500);
    const long = await store.openSession(info('alive'), 60_000);
    const old = await store.putObject(objectDraft('photos', 'r'), 'any');
    await store.holdRead(
      short,
      old.chunks.map((c) => c.id),
    );
    const written = chunkRef();
    await store.holdWrites(short, [written]);
    const alsoHeld = await store.holdRead(
      long,
      old.chunks.map((c) => c.id),
    );
    await store.deleteObject('photos', 'r');
    t.same(await takeAll(store), [], 'held twice');
    await store.releaseRead(long, alsoHeld);
    t.same(await takeAll(store), [], 'still held by the short session');
    // Gone once its lease runs out: at once for the SQL stores, within a second or two on etcd.
    const readId = old.chunks[0]!.id;
    for (let waited = 0; (await store.heldChunkIds()).has(readId) && waited < 15_000; waited += 250) await sleep(250);
    t.same(
      (await store.listSessions()).map((s) => s.role),
      ['alive'],
      'an expired session is not listed',
    );
    t.equal(await store.renewSession(short, 60_000, 0), false, 'an expired session cannot be renewed');
    t.same(await takeAll(store), [old.chunks[0]!.id], 'an expired read hold protects nothing');
    t.equal(await store.reapSessions(), 1);
    t.same(await takeAll(store), [written.id], "the expired session's uncommitted chunk is garbage");
    t.equal(await store.reapSessions(), 0);
    t.ok(await store.renewSession(long, 60_000, 0));
  });
}
