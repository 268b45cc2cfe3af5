import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { BufferPool } from '../../src/core/buffer-pool.js';
import { splitIntoChunks } from '../../src/core/chunker.js';

async function* piecesOf(data: Buffer, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  let offset = 0;
  let i = 0;
  while (offset < data.length) {
    const size = sizes[i++ % sizes.length]!;
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

async function split(data: Buffer, chunkSize: number, sizes: readonly number[] = [data.length || 1]) {
  const chunks: Buffer[] = [];
  for await (const chunk of splitIntoChunks(piecesOf(data, sizes), chunkSize)) chunks.push(chunk);
  return chunks;
}

const SIZE = 1000;

t.test('boundary sizes around the chunk size', async (t) => {
  const cases: [number, number[]][] = [
    [0, []],
    [1, [1]],
    [SIZE - 1, [SIZE - 1]],
    [SIZE, [SIZE]],
    [SIZE + 1, [SIZE, 1]],
    [2 * SIZE, [SIZE, SIZE]],
    [2 * SIZE + 1, [SIZE, SIZE, 1]],
  ];
  for (const [length, expected] of cases) {
    const data = randomBytes(length);
    const chunks = await split(data, SIZE);
    t.same(
      chunks.map((c) => c.length),
      expected,
      `${length} B -> [${expected}]`,
    );
    t.ok(Buffer.concat(chunks).equals(data), `${length} B round trip`);
  }
});

t.test('an empty stream and empty pieces yield nothing', async (t) => {
  async function* empties() {
    yield new Uint8Array(0);
    yield Buffer.alloc(0);
  }
  const chunks: Buffer[] = [];
  for await (const c of splitIntoChunks(empties(), 10)) chunks.push(c);
  t.same(chunks, []);
});

t.test('many odd-sized pieces and pieces bigger than a chunk round-trip exactly', async (t) => {
  const big = randomBytes(200_003);
  const pieceSizes = [[1], [7, 13, 1, 999, 4096], [SIZE * 3 + 7], [SIZE - 1, SIZE + 1], [65_536], [0, 5, 0, 17]];
  let combinations = 0;
  for (const sizes of pieceSizes) {
    for (const chunkSize of [1, 7, SIZE, 4096, 65_536]) {
      // Tiny chunks or one-byte pieces mean a generator step per byte: keep those streams short.
      const data = chunkSize < 16 || sizes[0] === 1 ? big.subarray(0, 5_003) : big;
      const chunks = await split(data, chunkSize, sizes);
      const full = chunks.slice(0, -1).every((c) => c.length === chunkSize);
      const last = chunks.at(-1)!.length;
      if (!full || last < 1 || last > chunkSize) t.fail(`bad chunk lengths for pieces ${sizes}, size ${chunkSize}`);
      if (!Buffer.concat(chunks).equals(data)) t.fail(`bytes differ for pieces ${sizes}, size ${chunkSize}`);
      if (chunks.length !== Math.ceil(data.length / chunkSize)) t.fail('wrong chunk count');
      combinations++;
    }
  }
  t.equal(combinations, 30, 'all combinations round-tripped');
});

t.test('chunks are views of take() buffers, owned by the consumer', async (t) => {
  const pool = new BufferPool(100, 4);
  const taken: Buffer[] = [];
  const take = () => {
    const b = pool.take();
    taken.push(b);
    return b;
  };
  const data = randomBytes(1050);
  const seen: Buffer[] = [];
  for await (const chunk of splitIntoChunks(piecesOf(data, [33, 250]), 100, take)) {
    t.equal(chunk.buffer, taken.at(-1)!.buffer, 'a view of the latest take()');
    seen.push(Buffer.from(chunk));
    pool.give(chunk); // recycle at once: the generator must not write into it again
  }
  t.ok(Buffer.concat(seen).equals(data));
  t.ok(taken.length === 11, 'one take per chunk');
  t.equal(new Set(taken.map((b) => b.buffer)).size, 1, 'the pool recycled one buffer throughout');
});

t.test('take() returning a larger buffer is cut to size; a smaller one is refused', async (t) => {
  const data = randomBytes(25);
  const chunks: Buffer[] = [];
  for await (const c of splitIntoChunks(piecesOf(data, [25]), 10, () => Buffer.alloc(64))) chunks.push(Buffer.from(c));
  t.same(
    chunks.map((c) => c.length),
    [10, 10, 5],
  );
  t.ok(Buffer.concat(chunks).equals(data));
  await t.rejects(async () => {
    for await (const _ of splitIntoChunks(piecesOf(data, [25]), 10, () => Buffer.alloc(5))) {
    }
  }, /smaller than the chunk size/);
  await t.rejects(
    async () => {
      for await (const _ of splitIntoChunks(piecesOf(data, [25]), 0)) {
      }
    },
    { code: 'INVALID' },
  );
});

t.test('a stream error reaches the consumer', async (t) => {
  async function* failing() {
    yield Buffer.alloc(15);
    throw new Error('disk went away');
  }
  const chunks: Buffer[] = [];
  await t.rejects(async () => {
    for await (const c of splitIntoChunks(failing(), 10)) chunks.push(c);
  }, /disk went away/);
  t.equal(chunks.length, 1, 'the full chunk before the error was delivered');
});

t.test('splitting 512 MiB in 1 MiB chunks keeps memory flat', async (t) => {
  const MiB = 1024 * 1024;
  const total = 512 * MiB;
  const pattern = randomBytes(3 * MiB);
  // Lazily generated: odd piece sizes cut from one reused pattern buffer.
  async function* synthetic(): AsyncGenerator<Uint8Array> {
    const sizes = [65_537, 1_000_003, 3 * MiB - 5, 17, 262_144];
    let sent = 0;
    for (let i = 0; sent < total; i++) {
      const size = Math.min(sizes[i % sizes.length]!, total - sent);
      const start = i % 5;
      yield pattern.subarray(start, start + size);
      sent += size;
    }
  }
  const expectedHash = createHash('sha256');
  for await (const piece of synthetic()) expectedHash.update(piece);

  globalThis.gc?.();
  const before = process.memoryUsage.rss();
  let peak = before;
  let bytes = 0;
  let chunks = 0;
  const hash = createHash('sha256');
  for await (const chunk of splitIntoChunks(synthetic(), MiB)) {
    hash.update(chunk);
    bytes += chunk.length;
    if (++chunks % 8 === 0) peak = Math.max(peak, process.memoryUsage.rss());
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  const growthMB = (peak - before) / 1e6;
  t.comment(`RSS before ${(before / 1e6).toFixed(1)} MB, peak growth ${growthMB.toFixed(1)} MB over ${chunks} chunks`);
  t.equal(bytes, total);
  t.equal(chunks, 512);
  t.equal(hash.digest('hex'), expectedHash.digest('hex'), 'bytes survived exactly');
  t.ok(growthMB < 64, `RSS grew ${growthMB.toFixed(1)} MB (< 64 MB)`);
});
