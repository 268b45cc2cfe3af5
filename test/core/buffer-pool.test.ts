import t from 'tap';
import { BufferPool } from '../../src/core/buffer-pool.js';

t.test('take gives exactly bufferSize bytes, reusing returned buffers', async (t) => {
  const pool = new BufferPool(1024, 2);
  const a = pool.take();
  t.equal(a.length, 1024);
  t.equal(a.buffer.byteLength, 1024, 'owns its memory, not a slab slice');
  t.ok(a.buffer instanceof SharedArrayBuffer, 'shared memory, so worker threads use it in place');
  t.equal(pool.pooled, 0);
  pool.give(a);
  t.equal(pool.pooled, 1);
  t.equal(pool.take(), a, 'the same buffer comes back');
  t.equal(pool.pooled, 0);
});

t.test('bounded: beyond maxPooled, buffers are dropped', async (t) => {
  const pool = new BufferPool(64, 2);
  const buffers = [pool.take(), pool.take(), pool.take()];
  for (const b of buffers) pool.give(b);
  t.equal(pool.pooled, 2);
  const none = new BufferPool(64, 0);
  none.give(none.take());
  t.equal(none.pooled, 0);
});

t.test('wrong sizes are ignored; a partial view of a pooled-size allocation recycles it whole', async (t) => {
  const pool = new BufferPool(128, 4);
  pool.give(Buffer.alloc(127));
  pool.give(Buffer.alloc(129));
  pool.give(Buffer.alloc(256).subarray(0, 64));
  pool.give(Buffer.alloc(256).subarray(100));
  t.equal(pool.pooled, 0);
  const whole = pool.take();
  pool.give(whole.subarray(0, 10));
  t.equal(pool.pooled, 1);
  const again = pool.take();
  t.equal(again.length, 128);
  t.equal(again.buffer, whole.buffer);
  pool.give(whole.subarray(5, 20));
  t.equal(pool.pooled, 0, 'a view not starting at the allocation is not ours to recycle');
});

t.test('giving the same buffer twice pools it once', async (t) => {
  const pool = new BufferPool(32, 4);
  const b = pool.take();
  pool.give(b);
  pool.give(b);
  pool.give(b.subarray(0, 3));
  t.equal(pool.pooled, 1);
  t.not(pool.take(), pool.take(), 'two takes never share memory');
});

t.test('rejects nonsense sizes', async (t) => {
  t.throws(() => new BufferPool(0, 1), { code: 'INVALID' });
  t.throws(() => new BufferPool(10, -1), { code: 'INVALID' });
});
