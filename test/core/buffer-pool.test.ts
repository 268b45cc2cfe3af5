import t from 'tap';
import { BufferPool, sharedBuffersFor } from '../../src/core/buffer-pool.js';

t.test('take gives exactly bufferSize bytes of shared memory, reusing returned buffers', async (t) => {
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

t.test('beyond its shared capacity the pool hands out ordinary buffers and never drops shared ones', async (t) => {
  const pool = new BufferPool(64, 2);
  const buffers = [pool.take(), pool.take(), pool.take(), pool.take()];
  t.same(
    buffers.map((b) => b.buffer instanceof SharedArrayBuffer),
    [true, true, false, false],
    'two shared, then ordinary ones',
  );
  t.same(
    buffers.map((b) => b.length),
    [64, 64, 64, 64],
  );
  t.equal(pool.shared, 2);
  for (const b of buffers) pool.give(b);
  t.equal(pool.pooled, 2, 'both shared buffers kept, the ordinary ones left to the collector');
  const again = [pool.take(), pool.take(), pool.take()];
  t.ok(again[0]!.buffer === buffers[1]!.buffer || again[0]!.buffer === buffers[0]!.buffer, 'shared ones reused');
  t.notOk(again[2]!.buffer instanceof SharedArrayBuffer, 'no third shared buffer is ever made');
  t.equal(pool.shared, 2);
  const none = new BufferPool(64, 0);
  t.notOk(none.take().buffer instanceof SharedArrayBuffer);
});

t.test('wrong sizes are ignored; a partial view of a pooled-size allocation recycles it whole', async (t) => {
  const pool = new BufferPool(128, 4);
  pool.give(Buffer.from(new SharedArrayBuffer(127)));
  pool.give(Buffer.from(new SharedArrayBuffer(129)));
  pool.give(Buffer.from(new SharedArrayBuffer(256)).subarray(0, 64));
  pool.give(Buffer.alloc(128));
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

t.test('shared capacity: chunks in flight plus those being filled, within a byte budget', async (t) => {
  const MiB = 1024 * 1024;
  t.equal(sharedBuffersFor(MiB, 16), 32);
  t.equal(sharedBuffersFor(8 * MiB, 16), 16, '128 MiB of 8 MiB buffers');
  t.equal(sharedBuffersFor(64 * MiB, 16), 4, 'never fewer than four');
});

t.test('rejects nonsense sizes', async (t) => {
  t.throws(() => new BufferPool(0, 1), { code: 'INVALID' });
  t.throws(() => new BufferPool(10, -1), { code: 'INVALID' });
});
