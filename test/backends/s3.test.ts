import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { S3Backend, type S3BackendOptions } from '../../src/backends/s3.js';
import { BackendSet } from '../../src/engine/backend-set.js';
import { NoopCollector } from '../../src/metrics/noop.js';
import { backendContract, chunkId, collect } from '../contracts/backend.js';
import { freePort } from '../fixtures/mount.js';
import { S3RVER_CREDENTIALS, startS3Server } from '../fixtures/s3.js';

const BUCKET = 'lilio-chunks';
const server = await startS3Server(t, [BUCKET, 'other-bucket']);

function s3Options(overrides: Partial<S3BackendOptions> = {}): S3BackendOptions {
  return {
    name: 's3',
    endpoint: server.endpoint,
    region: 'us-east-1',
    bucket: BUCKET,
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS },
    ...overrides,
  };
}

/** A backend that t closes in its teardown. */
function s3Backend(t: Test, overrides: Partial<S3BackendOptions> = {}): S3Backend {
  const backend = new S3Backend(s3Options(overrides));
  t.teardown(() => backend.close());
  return backend;
}

/** A TCP server that accepts connections and never answers: a hung remote. */
async function blackhole(t: Test): Promise<{ endpoint: string; sockets: Socket[]; closed: number }> {
  const state = { endpoint: '', sockets: [] as Socket[], closed: 0 };
  const hole = createServer((socket) => {
    state.sockets.push(socket);
    socket.on('close', () => state.closed++);
    socket.on('error', () => {});
    // Read (and drop) the request, so the client's close reaches us as end and close.
    socket.resume();
  });
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
  const address = hole.address();
  state.endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  t.teardown(async () => {
    for (const socket of state.sockets) socket.destroy();
    await new Promise<void>((resolve) => hole.close(() => resolve()));
  });
  return state;
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return check();
}

let prefixes = 0;
t.test('s3 backend contract (s3rver)', async (t) => {
  // A fresh prefix per subtest is a fresh, empty backend in the same bucket.
  backendContract(t, async () => ({
    backend: new S3Backend(s3Options({ prefix: `contract-${++prefixes}/` })),
    cleanup: async () => {},
  }));
});

t.test('chunks are objects prefix/id; list pages and sees only this prefix level', async (t) => {
  const backend = s3Backend(t, { prefix: 'paged', listPageSize: 7 });
  t.equal(backend.prefix, 'paged/', 'a trailing slash is added');
  const ids = Array.from({ length: 30 }, chunkId);
  await Promise.all(ids.map((id) => backend.put(id, Buffer.from(id))));

  const raw = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  t.teardown(() => raw.destroy());
  const stray = async (key: string) => raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'stray' }));
  await stray('paged/README');
  await stray(`paged/nested/${chunkId()}`);
  await stray(`paged-sibling/${chunkId()}`);
  await stray(chunkId());

  const listed = await collect(backend.list());
  t.equal(listed.length, 30, '30 ids over 5 pages, no strays');
  t.same(new Set(listed), new Set(ids));
  t.equal((await backend.get(ids[3]!)).toString(), ids[3], 'the object holds the chunk bytes');

  const bare = s3Backend(t, { bucket: 'other-bucket' });
  const id = chunkId();
  await bare.put(id, Buffer.from('at the root'));
  t.same(await collect(bare.list()), [id], 'no prefix: the bucket root');
  t.match(await bare.info(), { type: 's3', location: `s3://other-bucket/ at ${server.endpoint}` });
});

t.test('listEntries pages like list and reports sizes and LastModified', async (t) => {
  const backend = s3Backend(t, { prefix: 'entries', listPageSize: 4 });
  const chunks = Array.from({ length: 10 }, (_, i) => ({ id: chunkId(), size: i * 100 }));
  const before = Date.now();
  await Promise.all(chunks.map((c) => backend.put(c.id, Buffer.alloc(c.size, 1))));
  const raw = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  t.teardown(() => raw.destroy());
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'entries/README', Body: 'stray' }));
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: `entries/nested/${chunkId()}`, Body: 'stray' }));
  const entries = await collect(backend.listEntries());
  t.same(
    entries.map((e) => `${e.id}:${e.size}`).sort(),
    chunks.map((c) => `${c.id}:${c.size}`).sort(),
    'every chunk over three pages with its size, no strays',
  );
  // s3rver, like S3, keeps LastModified to the second.
  t.ok(entries.every((e) => e.modifiedMs >= before - 2_000 && e.modifiedMs <= Date.now() + 1_000));
});

t.test('wrong credentials are a clear PERMISSION error', async (t) => {
  const backend = s3Backend(t, { credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'x' } });
  const id = chunkId();
  await t.rejects(backend.put(id, Buffer.from('x')), { code: 'PERMISSION', message: /InvalidAccessKeyId.*403/ });
  await t.rejects(backend.get(id), { code: 'PERMISSION' });
  await t.rejects(collect(backend.list()), { code: 'PERMISSION' });
  const health = await backend.health();
  t.equal(health.ok, false);
  t.match(health.error, /backend "s3": .*403/);
});

t.test('a missing bucket is a clear error, not a missing chunk', async (t) => {
  const backend = s3Backend(t, { bucket: 'no-such-bucket' });
  await t.rejects(backend.put(chunkId(), Buffer.from('x')), {
    code: 'UNAVAILABLE',
    message: /bucket "no-such-bucket" does not exist/,
  });
  await t.rejects(backend.get(chunkId()), { code: 'UNAVAILABLE', message: /does not exist/ });
  const health = await backend.health();
  t.equal(health.ok, false);
  t.match(health.error, /bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1/);
});

t.test('an unreachable endpoint fails fast with UNAVAILABLE', async (t) => {
  const port = await freePort();
  const backend = s3Backend(t, { endpoint: `http://127.0.0.1:${port}` });
  const started = Date.now();
  await t.rejects(backend.put(chunkId(), Buffer.from('x'), { signal: AbortSignal.timeout(5_000) }), {
    code: 'UNAVAILABLE',
    message: /ECONNREFUSED/,
  });
  // Not a speed test: "refused" must not turn into waiting for the deadline.
  t.ok(Date.now() - started < 5_000, 'failed before the deadline');
  t.equal((await backend.health()).ok, false);
});

t.test('a hung endpoint: the deadline fires TIMEOUT and really closes the connection', async (t) => {
  const hole = await blackhole(t);
  const backend = s3Backend(t, { endpoint: hole.endpoint });
  await t.rejects(backend.get(chunkId(), { signal: AbortSignal.timeout(300) }), {
    code: 'TIMEOUT',
    message: /aborted/,
  });

  // Through the engine's BackendSet: its deadline aborts the call it raced. The deadline is generous
  // so that the request surely reaches the server before it fires, even on a busy machine.
  t.ok(await until(() => hole.closed === hole.sockets.length), 'nothing open from before');
  const set = new BackendSet([backend], new NoopCollector(), { timeoutMs: 1_000, probeIntervalMs: 60_000 });
  const opened = hole.sockets.length;
  await t.rejects(set.put('s3', chunkId(), randomBytes(1000)), { code: 'TIMEOUT' });
  t.ok(
    await until(() => hole.sockets.length > opened && hole.closed === hole.sockets.length),
    'the request the deadline abandoned was cancelled, not left running',
  );
});

t.test('aborting a signal cancels a call in flight', async (t) => {
  const hole = await blackhole(t);
  const backend = s3Backend(t, { endpoint: hole.endpoint });
  const controller = new AbortController();
  const pending = backend.stat(chunkId(), { signal: controller.signal });
  t.ok(await until(() => hole.sockets.length === 1), 'the request reached the server');
  controller.abort(new Error('no longer needed'));
  await t.rejects(pending, { code: 'TIMEOUT', message: /no longer needed/ });
  t.ok(await until(() => hole.closed === 1), 'the connection was closed');
});

t.test('a closed backend refuses calls', async (t) => {
  const backend = new S3Backend(s3Options({ prefix: 'closed' }));
  await backend.put(chunkId(), Buffer.from('x'));
  await backend.close();
  await t.rejects(backend.get(chunkId()), { code: 'UNAVAILABLE', message: /closed/ });
});

t.test('a put from shared memory (the engine pools SharedArrayBuffer chunks) stores exactly its bytes', async (t) => {
  const backend = s3Backend(t, { prefix: 'shared' });
  const shared = Buffer.from(new SharedArrayBuffer(300_000));
  randomBytes(shared.length).copy(shared);
  const view = shared.subarray(1000, 201_000);
  const id = chunkId();
  await backend.put(id, view);
  const expected = Buffer.from(view);
  shared.fill(0); // the pool reuses the buffer once the put has resolved
  t.ok((await backend.get(id)).equals(expected));
});
