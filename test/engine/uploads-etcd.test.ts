import { randomBytes } from 'node:crypto';
import t from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import type { MemoryBackend } from '../../src/backends/memory.js';
import { EtcdMetadataStore } from '../../src/meta/etcd.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';
import { startEtcd } from '../fixtures/etcd.js';

// Multipart uploads through the engine on a real etcd with its default transaction limit
// (128 operations): a part of more chunks than one transaction takes has its write holds
// ended through the garbage journal, and the completion's commit carries the upload's removal.

const etcd = await startEtcd(t);
const CHUNK = 64 * 1024;

async function stored(stores: Map<string, MemoryBackend>): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const store of stores.values()) for await (const id of store.list()) ids.add(id);
  return ids;
}

t.test('etcd: a big part, a small one, a replaced one; complete, read, gc', async (t) => {
  const meta = new EtcdMetadataStore({
    endpoints: etcd.endpoints,
    prefix: `/uploads-${randomBytes(4).toString('hex')}`,
    dialTimeoutMs: 2_000,
    requestTimeoutMs: 5_000,
    maxTxnOps: 128,
  });
  const { lilio, stores } = await testEngine(
    { chunkSize: CHUNK, inlineThreshold: 0, uploads: { expireAfterSeconds: 3600, minPartSize: CHUNK } },
    { meta },
  );
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt', { encrypt: true });
  // Something on the garbage queue, so that changes the journal would take are journaled.
  await lilio.putObject('bkt', 'old', pieces(pattern(CHUNK, 9)));
  await lilio.deleteObject('bkt', 'old');
  const { id } = await lilio.uploads.create('bkt', 'big', { contentType: 'video/mp4' });
  const big = pattern(140 * CHUNK + 17, 1);
  const first = await lilio.uploads.uploadPart(id, 1, pieces(big, 256 * 1024));
  await lilio.uploads.uploadPart(id, 2, pieces(pattern(CHUNK + 1, 2)));
  const second = await lilio.uploads.uploadPart(id, 2, pieces(pattern(2 * CHUNK + 3, 3)));
  const third = await lilio.uploads.uploadPart(id, 3, pieces(pattern(5, 4)));
  // The session ends (as when the uploading process exits): recorded parts keep their chunks.
  await lilio.session.close();
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 3, 'the old object and the replaced part 2');
  t.equal((await collectOrphans(lilio, { graceMs: 0 })).orphans, 0);
  const record = await lilio.uploads.complete(id, [
    { partNumber: 1, etag: first.etag },
    { partNumber: 2, etag: second.etag },
    { partNumber: 3, etag: third.etag },
  ]);
  t.match(record, { size: big.length + 2 * CHUNK + 8, contentType: 'video/mp4', layout: 'extents' });
  t.match(record.etag, /-3$/);
  const whole = Buffer.concat([big, pattern(2 * CHUNK + 3, 3), pattern(5, 4)]);
  t.ok((await collect(lilio.getObject('bkt', 'big'))).equals(whole), 'read back whole');
  const start = big.length - 3;
  const end = big.length + 2 * CHUNK + 5;
  t.ok((await collect(lilio.getObject('bkt', 'big', { start, end }))).equals(whole.subarray(start, end)));
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 0, 'nothing of the object is garbage');
  t.equal((await stored(stores)).size, record.chunks.length);
  await t.rejects(lilio.uploads.complete(id, [{ partNumber: 1, etag: first.etag }]), { code: 'NO_SUCH_UPLOAD' });

  // Parts uploaded at once, as aws-cli and rclone do, all touch the upload's record: each lands.
  const parallel = await lilio.uploads.create('bkt', 'parallel');
  const bodies = Array.from({ length: 8 }, (_, i) => pattern(CHUNK + i, 20 + i));
  const results = await Promise.all(
    bodies.map((body, i) => lilio.uploads.uploadPart(parallel.id, i + 1, pieces(body, 16 * 1024))),
  );
  const done = await lilio.uploads.complete(
    parallel.id,
    results.map((r, i) => ({ partNumber: i + 1, etag: r.etag })),
  );
  t.ok((await collect(lilio.getObject('bkt', 'parallel'))).equals(Buffer.concat(bodies)), 'eight parts at once');
  await lilio.deleteObject('bkt', 'parallel');
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, done.chunks.length);

  const aborted = await lilio.uploads.create('bkt', 'gone');
  await lilio.uploads.uploadPart(aborted.id, 1, pieces(pattern(3 * CHUNK, 5)));
  await lilio.uploads.abort(aborted.id);
  t.equal((await lilio.collectGarbage({ graceMs: 0 })).deleted, 3, 'an abort queues its parts');
  t.equal((await stored(stores)).size, record.chunks.length);
});
