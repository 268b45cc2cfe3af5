import t from 'tap';
import { MemoryBackend } from '../../src/backends/memory.js';
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
