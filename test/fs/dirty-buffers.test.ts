import t from 'tap';
import { Vfs } from '../../src/fs/vfs.js';
import { pattern, testEngine } from '../fixtures/engine.js';

// Writes at scattered offsets keep at most maxDirtyBuffers chunk buffers of a file unsealed (plus
// those being replicated): the staging area is bounded however many chunks a file touches.

const CHUNK = 64 * 1024;
const CHUNKS = 48;
const MAX_DIRTY = 4;
const SEALS = 2;

t.test('scattered writes to 48 chunks hold at most maxDirtyBuffers + seals in flight', async (t) => {
  const { lilio } = await testEngine({ inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('scatter', { chunkSize: CHUNK });
  const vfs = new Vfs(lilio, {
    readOnly: false,
    maxDirtyBuffers: MAX_DIRTY,
    sealsInFlight: SEALS,
    maxFileSize: 2 ** 50,
  });

  const pool = lilio.writerDeps.pool(CHUNK);
  let out = 0;
  let peak = 0;
  const take = pool.take.bind(pool);
  const give = pool.give.bind(pool);
  pool.take = () => {
    peak = Math.max(peak, ++out);
    return take();
  };
  pool.give = (buf) => {
    out--;
    give(buf);
  };

  const expected = Buffer.alloc(CHUNKS * CHUNK);
  const fd = await vfs.create('/scatter/file.bin', 0o644);
  // Every chunk once, in an order no sequential writer would use, then some again.
  const order = Array.from({ length: CHUNKS }, (_, i) => (i * 29) % CHUNKS);
  for (const [n, index] of [...order, ...order.slice(0, 10)].entries()) {
    const data = pattern(1000, n + 1);
    const at = index * CHUNK + ((n * 997) % (CHUNK - data.length));
    t.equal(await vfs.write(fd, data, data.length, at), data.length);
    data.copy(expected, at);
  }
  // The last chunk is written up to its end, so the size is the whole file.
  const tail = pattern(10, 99);
  await vfs.write(fd, tail, tail.length, CHUNKS * CHUNK - tail.length);
  tail.copy(expected, CHUNKS * CHUNK - tail.length);
  await vfs.release(fd);

  t.ok(peak <= MAX_DIRTY + 1 + SEALS, `at most ${peak} chunk buffers were out at once`);
  t.ok(peak > MAX_DIRTY, 'the bound was reached (the test exercised it)');
  const record = await lilio.meta.getObject('scatter', 'file.bin');
  // Only the bytes written are stored: slices, packed into few chunks, not a whole chunk per window.
  t.equal(record?.layout, 'extents');
  const written = new Set<number>();
  for (const [n, index] of [...order, ...order.slice(0, 10)].entries()) {
    const at = index * CHUNK + ((n * 997) % (CHUNK - 1000));
    for (let i = at; i < at + 1000; i++) written.add(i);
  }
  t.equal(record?.allocated, written.size + tail.length, 'the version shows exactly the bytes written');

  const back = Buffer.alloc(expected.length);
  const rfd = await vfs.open('/scatter/file.bin', 0);
  t.equal(await vfs.read(rfd, back, back.length, 0), back.length);
  await vfs.release(rfd);
  t.ok(back.equals(expected), 'every byte reads back as written, zeros between');

  // Cut to zero and extended again: a hole, nothing rewritten, nothing loaded.
  peak = out;
  const before = out;
  const wfd = await vfs.open('/scatter/file.bin', 2 /* O_RDWR */);
  await vfs.ftruncate(wfd, 0);
  await vfs.ftruncate(wfd, CHUNKS * CHUNK);
  const mark = Buffer.from('mark');
  await vfs.write(wfd, mark, mark.length, 20 * CHUNK + 5);
  await vfs.release(wfd);
  // The written window's buffer and the slice being replicated.
  t.ok(peak - before <= 2, `the commit held ${peak - before} buffers at once`);
  const zeros = Buffer.alloc(CHUNKS * CHUNK);
  mark.copy(zeros, 20 * CHUNK + 5);
  const again = Buffer.alloc(zeros.length);
  const afd = await vfs.open('/scatter/file.bin', 0);
  t.equal(await vfs.read(afd, again, again.length, 0), again.length);
  await vfs.release(afd);
  t.ok(again.equals(zeros), 'zeros, and the one write');
  t.equal((await lilio.meta.getObject('scatter', 'file.bin'))?.chunks.length, 1, 'one slice; the rest is a hole');
});
