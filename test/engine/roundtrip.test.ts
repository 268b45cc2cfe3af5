import t from 'tap';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;

t.test('bytes round-trip exactly at every chunk boundary', async (t) => {
  const { lilio } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('photos');
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17];
  for (const size of sizes) {
    const data = pattern(size, size + 1);
    const record = await lilio.putObject('photos', `f-${size}`, pieces(data, 10_000));
    t.equal(record.size, size, `size ${size} recorded`);
    t.equal(record.chunks.length, Math.ceil(size / CHUNK), `size ${size} has ${Math.ceil(size / CHUNK)} chunks`);
    for (const chunk of record.chunks) t.equal(new Set(chunk.replicas).size, 3, 'three distinct replicas');
    const back = await collect(lilio.getObject('photos', `f-${size}`));
    t.ok(back.equals(data), `size ${size} reads back identical`);
  }
});

t.test('ranges and random reads return exactly the requested bytes', async (t) => {
  const { lilio } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('photos');
  const data = pattern(3 * CHUNK + 100, 7);
  await lilio.putObject('photos', 'x', pieces(data));
  const ranges: Array<[number, number]> = [
    [0, 1],
    [CHUNK - 3, CHUNK + 3],
    [CHUNK, 2 * CHUNK],
    [10, data.length],
    [data.length - 1, data.length + 50],
  ];
  for (const [start, end] of ranges) {
    const back = await collect(lilio.getObject('photos', 'x', { start, end }));
    t.ok(back.equals(data.subarray(start, Math.min(end, data.length))), `range ${start}-${end}`);
  }
  const reader = await lilio.openObject('photos', 'x');
  const target = Buffer.alloc(CHUNK * 2);
  const n = await reader.readInto(target, CHUNK - 10, CHUNK * 2);
  t.equal(n, CHUNK * 2);
  t.ok(target.equals(data.subarray(CHUNK - 10, 3 * CHUNK - 10)), 'readInto across chunk boundaries');
  t.equal(await reader.readInto(target, data.length), 0, 'read at end returns 0');
});

t.test('small objects are stored inline: one metadata write, no chunk', async (t) => {
  const { lilio, stores } = await testEngine({ inlineThreshold: 4096 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('small');
  const data = pattern(1024);
  const record = await lilio.putObject('small', 'tiny.txt', pieces(data));
  t.equal(record.chunks.length, 0);
  t.type(record.inline, 'string');
  for (const store of stores.values()) t.equal(await count(store.list()), 0, `${store.name} holds no chunk`);
  t.ok((await collect(lilio.getObject('small', 'tiny.txt'))).equals(data));
  const over = await lilio.putObject('small', 'over.txt', pieces(pattern(4097)));
  t.equal(over.inline, undefined, 'just over the threshold goes to chunks');
});

t.test('a new version replaces the old; a reader that opened the old one keeps reading it', async (t) => {
  const { lilio } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  const v1 = pattern(2 * CHUNK, 1);
  const v2 = pattern(CHUNK + 5, 2);
  await lilio.putObject('bkt1', 'k', pieces(v1));
  const oldReader = await lilio.openObject('bkt1', 'k');
  await lilio.putObject('bkt1', 'k', pieces(v2));
  t.ok((await collect(lilio.getObject('bkt1', 'k'))).equals(v2), 'new readers see v2');
  t.ok((await collect(oldReader.stream())).equals(v1), 'the open reader still reads v1 in full');
  t.equal(await lilio.meta.garbageCount(), 2, "v1's two chunks wait for their grace period");
});

t.test('bad names are refused before anything is stored', async (t) => {
  const { lilio } = await testEngine();
  t.teardown(() => lilio.close());
  await t.rejects(lilio.createBucket('Bad_Name'), { code: 'INVALID' });
  await t.rejects(lilio.createBucket('admin'), { code: 'INVALID' });
  await lilio.createBucket('good');
  await t.rejects(lilio.createBucket('good'), { code: 'EXISTS' });
  await t.rejects(lilio.putObject('good', '../escape', pieces(pattern(10))), { code: 'INVALID' });
  await t.rejects(lilio.putObject('good', 'a\0b', pieces(pattern(10))), { code: 'INVALID' });
  await t.rejects(lilio.putObject('good', 'x'.repeat(1025), pieces(pattern(10))), { code: 'NAME_TOO_LONG' });
  await t.rejects(lilio.putObject('missing', 'k', pieces(pattern(10))), { code: 'NOT_FOUND' });
  await t.rejects(lilio.headObject('good', 'nope'), { code: 'NOT_FOUND' });
  await t.rejects(lilio.createBucket('tiny', { chunkSize: 1000 }), { code: 'INVALID' });
});

t.test('a bucket is removed only when empty', async (t) => {
  const { lilio } = await testEngine();
  t.teardown(() => lilio.close());
  await lilio.createBucket('full');
  await lilio.putObject('full', 'a', pieces(pattern(10)));
  await t.rejects(lilio.deleteBucket('full'), { code: 'NOT_EMPTY' });
  await lilio.deleteObject('full', 'a');
  await lilio.deleteBucket('full');
  await t.rejects(lilio.getBucket('full'), { code: 'NOT_FOUND' });
});

t.test('a failing source aborts the put and stores nothing', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => lilio.close());
  await lilio.createBucket('bkt1');
  async function* broken() {
    yield pattern(3 * CHUNK);
    throw new Error('disk read error');
  }
  await t.rejects(lilio.putObject('bkt1', 'k', broken()), /disk read error/);
  await t.rejects(lilio.headObject('bkt1', 'k'), { code: 'NOT_FOUND' });
  for (const store of stores.values()) t.equal(await count(store.list()), 0, `${store.name} holds nothing`);
});

async function count(ids: AsyncIterable<string>): Promise<number> {
  let n = 0;
  for await (const _ of ids) n++;
  return n;
}
