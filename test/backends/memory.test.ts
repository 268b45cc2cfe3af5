import t from 'tap';
import { MemoryBackend, SharedReplicas } from '../../src/backends/memory.js';
import { backendContract, chunkId } from '../contracts/backend.js';

t.test('memory backend contract', async (t) => {
  backendContract(t, async () => ({ backend: new MemoryBackend({ name: 'mem' }), cleanup: async () => {} }));
});

t.test('capacity is enforced', async (t) => {
  const backend = new MemoryBackend({ name: 'small', capacityBytes: 100 });
  t.equal(backend.type, 'memory');
  const a = chunkId();
  await backend.put(a, Buffer.alloc(60));
  await t.rejects(backend.put(chunkId(), Buffer.alloc(41)), { code: 'NO_SPACE' });
  await backend.put(a, Buffer.alloc(100));
  t.same(await backend.info(), { name: 'small', type: 'memory', location: 'memory', totalBytes: 100, freeBytes: 0 });
  await backend.delete(a);
  await backend.put(chunkId(), Buffer.alloc(100));
  t.equal((await backend.info()).freeBytes, 0);
});

t.test('replicas share one copy, and none can change another', async (t) => {
  const shared = new SharedReplicas();
  const [a, b, c] = ['a', 'b', 'c'].map((name) => new MemoryBackend({ name, shared })) as [
    MemoryBackend,
    MemoryBackend,
    MemoryBackend,
  ];
  const id = chunkId();
  const data = Buffer.from('the same bytes on three replicas');
  const original = Buffer.from(data);
  await a.put(id, data);
  await b.put(id, data);
  data.fill(0); // the writer reuses its buffer
  await c.put(id, Buffer.from('different bytes: a rotten replica'));
  t.same(await a.get(id), original, 'a kept its bytes after the writer reused its buffer');
  t.same(await b.get(id), original);
  t.same(await c.get(id), Buffer.from('different bytes: a rotten replica'), 'c keeps bytes of its own');

  const got = await a.get(id);
  got.fill(1); // a reader scribbling on what it got
  t.same(await b.get(id), original, 'what a reader got is a copy');

  await a.delete(id);
  t.same(await b.get(id), original, 'b still holds the shared copy after a deleted its replica');
  await b.put(id, Buffer.from('rewritten'));
  t.same(await b.get(id), Buffer.from('rewritten'), 'a rewrite replaces only that replica');
  await b.delete(id);
  await a.put(id, original);
  t.same(await a.get(id), original, 'after every reference is gone, a new put starts afresh');
});
