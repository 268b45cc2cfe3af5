import t, { type Test } from 'tap';
import type { MemoryBackend } from '../../src/backends/memory.js';
import type { ChunkRef } from '../../src/core/types.js';
import { Errno, toErrno } from '../../src/fs/errno.js';
import { Vfs } from '../../src/fs/vfs.js';
import { pattern, testEngine } from '../fixtures/engine.js';
import { startEtcd } from '../fixtures/etcd.js';
import { lossyEtcd } from '../fixtures/lossy-etcd.js';

// The mount's write path (the Vfs, driven without FUSE) on a real etcd whose commit answer is
// lost on the wire: close() succeeds when the commit landed, fails with EIO when it did not, and
// in both cases no version is left pointing at a deleted chunk, nor is a chunk of the version
// the file was built on put on the garbage queue.

const etcd = await startEtcd(t);
const CHUNK = 64 * 1024;
const OUTAGE_MS = 2_500;
const O_RDONLY = 0;
const O_RDWR = 2;

async function setup(t: Test) {
  const lossy = await lossyEtcd(t, etcd);
  const engine = await testEngine(
    { chunkSize: CHUNK, inlineThreshold: 0 },
    { meta: lossy.store, commitReadBackMs: 20_000 },
  );
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('bkt');
  const vfs = new Vfs(engine.lilio, { readOnly: false, maxDirtyBuffers: 4, sealsInFlight: 2, maxFileSize: 2 ** 50 });
  return { ...lossy, ...engine, vfs };
}

async function readAll(vfs: Vfs, path: string, size: number): Promise<Buffer> {
  const fd = await vfs.open(path, O_RDONLY);
  try {
    const out = Buffer.alloc(size + 1);
    const n = await vfs.read(fd, out, out.length, 0);
    return out.subarray(0, n);
  } finally {
    await vfs.release(fd);
  }
}

async function replicas(stores: Map<string, MemoryBackend>, chunk: ChunkRef): Promise<number> {
  let n = 0;
  for (const name of chunk.replicas) if ((await stores.get(name)!.stat(chunk.id)) !== undefined) n++;
  return n;
}

t.test('close() of a new file whose commit landed but lost its answer succeeds', async (t) => {
  const { vfs, lilio, stores, putFailures, loseNextCommit } = await setup(t);
  const data = pattern(3 * CHUNK + 100, 1);
  const fd = await vfs.create('/bkt/new.bin', 0o644);
  await vfs.write(fd, data, data.length, 0);
  const restored = loseNextCommit('swallow', OUTAGE_MS);
  await vfs.release(fd);
  await restored;
  t.match(putFailures, [{ code: 'COMMIT_UNKNOWN' }], 'the answer was lost and the engine read it back');
  t.ok((await readAll(vfs, '/bkt/new.bin', data.length)).equals(data), 'the file reads back whole');
  await lilio.chunks.drain();
  const record = await lilio.headObject('bkt', 'new.bin');
  for (const chunk of record.chunks) t.equal(await replicas(stores, chunk), 3, 'every chunk stored');
  t.equal(await lilio.meta.garbageCount(), 0, 'nothing queued');
});

t.test('close() of a rewrite whose commit never arrived is EIO; the old file and its chunks stay', async (t) => {
  const { vfs, lilio, stores, store, loseNextCommit } = await setup(t);
  const old = pattern(3 * CHUNK, 2);
  const fd = await vfs.create('/bkt/file.bin', 0o644);
  await vfs.write(fd, old, old.length, 0);
  await vfs.release(fd);
  const base = await lilio.headObject('bkt', 'file.bin');

  // One chunk changed in place: the draft reuses the other two.
  const wfd = await vfs.open('/bkt/file.bin', O_RDWR);
  const patch = pattern(100, 3);
  await vfs.write(wfd, patch, patch.length, CHUNK + 10);
  const restored = loseNextCommit('blackhole', OUTAGE_MS);
  const before = Date.now();
  const err = await vfs.release(wfd).catch((e: unknown) => e);
  await restored;
  t.match(err, { code: 'COMMIT_UNKNOWN' });
  t.equal(toErrno(err), Errno.EIO, 'close(2) reports EIO');

  t.equal((await lilio.headObject('bkt', 'file.bin')).versionId, base.versionId, 'the old version is visible');
  t.ok((await readAll(vfs, '/bkt/file.bin', old.length)).equals(old), 'and reads back whole');
  const garbage = await store.peekGarbage(undefined, 100);
  t.equal(garbage.length, 1, 'only the rewritten chunk is queued');
  t.notOk(
    garbage.some((e) => base.chunks.some((c) => c.id === e.chunk.id)),
    'no chunk of the version the file was built on is queued',
  );
  t.ok(garbage[0]!.queuedAt >= before, 'queued from now');
  await lilio.chunks.drain();
  t.equal(await replicas(stores, garbage[0]!.chunk), 3, 'not deleted at once');
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 1);
  for (const chunk of base.chunks) t.equal(await replicas(stores, chunk), 3, 'the base chunks are all there');
  t.ok((await readAll(vfs, '/bkt/file.bin', old.length)).equals(old), 'still whole after garbage collection');

  // The file is usable again: the next close commits.
  const again = await vfs.open('/bkt/file.bin', O_RDWR);
  await vfs.write(again, patch, patch.length, CHUNK + 10);
  await vfs.release(again);
  const expected = Buffer.from(old);
  patch.copy(expected, CHUNK + 10);
  t.ok((await readAll(vfs, '/bkt/file.bin', old.length)).equals(expected), 'a later close commits');
});

t.test('rename and unlink whose answers were lost are read back', async (t) => {
  const { vfs, lilio, loseNextCommit } = await setup(t);
  const data = pattern(CHUNK, 4);
  const fd = await vfs.create('/bkt/a', 0o644);
  await vfs.write(fd, data, data.length, 0);
  await vfs.release(fd);

  let restored = loseNextCommit('swallow', OUTAGE_MS);
  await vfs.rename('/bkt/a', '/bkt/b');
  await restored;
  t.ok((await readAll(vfs, '/bkt/b', data.length)).equals(data), 'a landed rename succeeds');
  await t.rejects(lilio.headObject('bkt', 'a'), { code: 'NOT_FOUND' });

  restored = loseNextCommit('blackhole', OUTAGE_MS);
  const err = await vfs.unlink('/bkt/b').catch((e: unknown) => e);
  await restored;
  t.equal(toErrno(err), Errno.EIO, 'an unlink that did not land is EIO');
  t.ok((await readAll(vfs, '/bkt/b', data.length)).equals(data), 'and the file is still there, whole');

  restored = loseNextCommit('swallow', OUTAGE_MS);
  await vfs.unlink('/bkt/b');
  await restored;
  await t.rejects(lilio.headObject('bkt', 'b'), { code: 'NOT_FOUND' }, 'a landed unlink succeeds');
});
