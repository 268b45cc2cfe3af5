import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { StorageBackend } from '../../src/backends/backend.js';

/**
 * The StorageBackend contract, written once and run against every
 * implementation (memory, local, and later S3, Google Drive and HTTP nodes).
 * It exercises only the interface, so a new backend passes it or is wrong.
 * Each subtest gets a fresh backend from the factory and cleans it up.
 */
export interface BackendUnderTest {
  backend: StorageBackend;
  cleanup(): Promise<void>;
}

export type BackendFactory = () => Promise<BackendUnderTest>;

const INVALID_IDS = [
  '../x',
  '../../../../tmp/escape',
  'ABC',
  '',
  '0123456789ABCDEF0123456789ABCDEF',
  `${'a'.repeat(31)}/`,
];

let counter = 0;
/** Valid, unique chunk ids that do not all share a fan-out prefix. */
export function chunkId(): string {
  counter++;
  return randomBytes(12).toString('hex') + counter.toString(16).padStart(8, '0');
}

/** Everything an async iterable yields (Array.fromAsync arrives in Node 22). */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export function backendContract(t: Test, factory: BackendFactory): void {
  const withBackend = (name: string, body: (t: Test, backend: StorageBackend) => Promise<void>) =>
    t.test(name, async (t) => {
      const { backend, cleanup } = await factory();
      t.teardown(async () => {
        await backend.close();
        await cleanup();
      });
      await body(t, backend);
    });

  withBackend('put then get returns the same bytes', async (t, backend) => {
    for (const size of [0, 1, 1024 * 1024, 1000 + Math.floor(Math.random() * 5000)]) {
      const id = chunkId();
      const data = randomBytes(size);
      await backend.put(id, data);
      const back = await backend.get(id);
      t.ok(Buffer.isBuffer(back), `${size} B: get returns a Buffer`);
      t.equal(back.length, size, `${size} B: length`);
      t.ok(back.equals(data), `${size} B: bytes`);
    }
    const view = new Uint8Array(randomBytes(64).buffer, 8, 32);
    const id = chunkId();
    await backend.put(id, view);
    t.ok((await backend.get(id)).equals(view), 'a Uint8Array view stores only its own bytes');
  });

  withBackend('get of a missing chunk is NOT_FOUND', async (t, backend) => {
    await t.rejects(backend.get(chunkId()), { code: 'NOT_FOUND' });
  });

  withBackend('put replaces an existing chunk', async (t, backend) => {
    const id = chunkId();
    await backend.put(id, Buffer.from('first version, longer'));
    await backend.put(id, Buffer.from('second'));
    t.equal((await backend.get(id)).toString(), 'second');
    t.equal(await backend.stat(id), 6);
    t.same(await collect(backend.list()), [id], 'still one chunk');
  });

  withBackend('stored bytes are independent of the caller buffers', async (t, backend) => {
    const id = chunkId();
    const data = Buffer.from('original bytes');
    await backend.put(id, data);
    data.fill(0x21);
    t.equal((await backend.get(id)).toString(), 'original bytes', 'mutating the put buffer changes nothing');
    const got = await backend.get(id);
    got.fill(0x21);
    t.equal((await backend.get(id)).toString(), 'original bytes', 'mutating a returned buffer changes nothing');
  });

  withBackend('delete removes; deleting again succeeds', async (t, backend) => {
    const id = chunkId();
    await backend.put(id, Buffer.from('doomed'));
    await backend.delete(id);
    await t.rejects(backend.get(id), { code: 'NOT_FOUND' });
    t.equal(await backend.stat(id), undefined);
    await t.resolves(backend.delete(id), 'second delete');
    await t.resolves(backend.delete(chunkId()), 'delete of a never-stored id');
  });

  withBackend('stat reports the stored size or undefined', async (t, backend) => {
    const id = chunkId();
    t.equal(await backend.stat(id), undefined);
    await backend.put(id, randomBytes(4321));
    t.equal(await backend.stat(id), 4321);
    const empty = chunkId();
    await backend.put(empty, Buffer.alloc(0));
    t.equal(await backend.stat(empty), 0, 'an empty chunk exists with size 0');
  });

  withBackend('list yields exactly the stored ids', async (t, backend) => {
    t.same(await collect(backend.list()), [], 'empty backend');
    const ids = Array.from({ length: 40 }, chunkId);
    for (const id of ids) await backend.put(id, Buffer.from(id));
    const deleted = ids.splice(0, 10);
    for (const id of deleted) await backend.delete(id);
    const listed = await collect(backend.list());
    t.equal(listed.length, ids.length, 'no duplicates, nothing extra');
    t.same(new Set(listed), new Set(ids));
  });

  withBackend('listEntries, where offered, reports every chunk with its size and age', async (t, backend) => {
    if (!backend.listEntries) {
      t.pass(`${backend.type} does not report chunk ages`);
      return;
    }
    const entries = () => collect(backend.listEntries!());
    t.same(await entries(), [], 'empty backend');
    const before = Date.now();
    const chunks = Array.from({ length: 12 }, (_, i) => ({ id: chunkId(), data: randomBytes(i * 1000) }));
    for (const c of chunks) await backend.put(c.id, c.data);
    await backend.delete(chunks[0]!.id);
    const after = Date.now();
    const listed = await entries();
    t.same(
      listed.map((e) => `${e.id}:${e.size}`).sort(),
      chunks
        .slice(1)
        .map((c) => `${c.id}:${c.data.length}`)
        .sort(),
      'exactly the stored chunks, with their sizes',
    );
    // Backends keep times at different resolutions (S3: seconds); a couple of seconds either way.
    const fresh = listed.filter((e) => e.modifiedMs >= before - 2_000 && e.modifiedMs <= after + 2_000);
    t.equal(fresh.length, listed.length, 'every modification time is about now');
  });

  withBackend('invalid ids are rejected with INVALID and nothing is written', async (t, backend) => {
    for (const bad of INVALID_IDS) {
      const label = JSON.stringify(bad);
      await t.rejects(backend.put(bad, Buffer.from('x')), { code: 'INVALID' }, `put ${label}`);
      await t.rejects(backend.get(bad), { code: 'INVALID' }, `get ${label}`);
      await t.rejects(backend.stat(bad), { code: 'INVALID' }, `stat ${label}`);
      await t.rejects(backend.delete(bad), { code: 'INVALID' }, `delete ${label}`);
    }
    t.same(await collect(backend.list()), [], 'nothing was stored');
  });

  withBackend('concurrent puts of different ids all land', async (t, backend) => {
    const chunks = Array.from({ length: 64 }, () => ({
      id: chunkId(),
      data: randomBytes(1 + Math.floor(Math.random() * 70_000)),
    }));
    await Promise.all(chunks.map((c) => backend.put(c.id, c.data)));
    const back = await Promise.all(chunks.map((c) => backend.get(c.id)));
    t.equal(back.filter((b, i) => b.equals(chunks[i]!.data)).length, chunks.length, 'every chunk reads back intact');
    t.equal((await collect(backend.list())).length, chunks.length);
  });

  withBackend('concurrent puts of one id leave one complete version', async (t, backend) => {
    const id = chunkId();
    const versions = Array.from({ length: 8 }, (_, i) => Buffer.alloc(50_000 + i, i));
    await Promise.all(versions.map((v) => backend.put(id, v)));
    const back = await backend.get(id);
    t.ok(
      versions.some((v) => v.equals(back)),
      'the chunk is exactly one of the writes',
    );
  });

  withBackend('an aborted signal stops a call before it starts', async (t, backend) => {
    const controller = new AbortController();
    controller.abort(new Error('no longer needed'));
    const id = chunkId();
    await t.rejects(backend.put(id, Buffer.from('x'), { signal: controller.signal }));
    t.equal(await backend.stat(id), undefined, 'nothing written');
  });

  withBackend('health is ok and info names the backend', async (t, backend) => {
    const health = await backend.health();
    t.equal(health.ok, true, health.error ?? 'healthy');
    t.type(health.latencyMs, 'number');
    t.ok(health.latencyMs >= 0);
    const info = await backend.info();
    t.equal(info.name, backend.name);
    t.equal(info.type, backend.type);
    t.type(info.location, 'string');
    if (info.totalBytes !== undefined && info.freeBytes !== undefined) {
      t.ok(info.freeBytes <= info.totalBytes, 'free <= total');
    }
    t.same(await collect(backend.list()), [], 'health probes leave no chunks behind');
  });
}
