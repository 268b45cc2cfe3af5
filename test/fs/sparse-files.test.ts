import t, { type Test } from 'tap';
import { DirtyBudget } from '../../src/fs/dirty-budget.js';
import { Vfs, type VfsOptions } from '../../src/fs/vfs.js';
import { pattern, type TestEngine, testEngine } from '../fixtures/engine.js';

// Holes store nothing and small writes store only what they wrote (slices), driven through the Vfs
// without FUSE so every step is exact. Sizes are logical: the memory backends hold what is stored.

const CHUNK = 64 * 1024;
const PiB = 2 ** 50;

function options(overrides: Partial<VfsOptions> = {}): VfsOptions {
  return { readOnly: false, maxDirtyBuffers: 64, sealsInFlight: 4, maxFileSize: PiB, ...overrides };
}

/** Bytes every backend holds now, and bytes put since the engine opened. */
function meter(engine: TestEngine) {
  let written = 0;
  for (const store of engine.stores.values()) {
    const put = store.put.bind(store);
    store.put = (id, data, opts) => {
      written += data.byteLength;
      return put(id, data, opts);
    };
  }
  return {
    get written() {
      return written;
    },
    async stored(): Promise<number> {
      let bytes = 0;
      for (const store of engine.stores.values()) {
        for await (const id of store.list()) bytes += (await store.stat(id)) ?? 0;
      }
      return bytes;
    },
  };
}

async function setup(t: Test, vfsOverrides: Partial<VfsOptions> = {}) {
  const engine = await testEngine({ inlineThreshold: 0, gc: { graceSeconds: 0 } });
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('bkt', { chunkSize: CHUNK });
  const vfs = new Vfs(engine.lilio, options(vfsOverrides));
  return { ...engine, vfs, meter: meter(engine) };
}

async function readAll(vfs: Vfs, path: string, size: number): Promise<Buffer> {
  const fd = await vfs.open(path, 0);
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const n = await vfs.read(fd, out.subarray(at), Math.min(size - at, 3 * CHUNK + 17), at);
    if (n === 0) break;
    at += n;
  }
  await vfs.release(fd);
  return out.subarray(0, at);
}

t.test('truncate to 1 PiB is one commit that stores nothing; past the maximum is EFBIG', async (t) => {
  const { vfs, lilio, meter } = await setup(t);
  const fd = await vfs.create('/bkt/huge', 0o644);
  await vfs.release(fd);
  const started = performance.now();
  await vfs.truncate('/bkt/huge', PiB);
  t.ok(performance.now() - started < 1000, 'growing to 1 PiB is quick');
  const record = await lilio.meta.getObject('bkt', 'huge');
  t.equal(record?.size, PiB);
  t.equal(record?.chunks.length, 0, 'no chunk for a hole');
  t.equal(meter.written, 0, 'nothing was written to any backend');
  t.equal((await vfs.getattr('/bkt/huge')).blocks, 0, 'du counts nothing');

  const fd2 = await vfs.open('/bkt/huge', 2);
  const buf = Buffer.alloc(4096, 0xaa);
  t.equal(await vfs.read(fd2, buf, 4096, PiB / 2), 4096);
  t.ok(buf.equals(Buffer.alloc(4096)), 'a hole reads as zeros');
  await t.rejects(vfs.truncate('/bkt/huge', PiB + 1), { code: 'TOO_BIG' }, 'past the maximum: EFBIG');
  await t.rejects(vfs.write(fd2, Buffer.alloc(10), 10, PiB - 5), { code: 'TOO_BIG' });
  // One MiB written in the middle of a petabyte: a handful of records, about a MiB stored.
  const data = pattern(CHUNK * 16, 7);
  await vfs.write(fd2, data, data.length, PiB / 4 + 12345);
  await vfs.release(fd2);
  const after = await lilio.meta.getObject('bkt', 'huge');
  t.equal(after?.size, PiB);
  t.ok((after?.chunks.length ?? 0) <= 17, `${after?.chunks.length} chunks`);
  t.ok(meter.written <= 3 * (data.length + 64 * 1024), `${meter.written} bytes put for ${data.length} written`);
  const back = Buffer.alloc(data.length + 200);
  const fd3 = await vfs.open('/bkt/huge', 0);
  await vfs.read(fd3, back, back.length, PiB / 4 + 12345 - 100);
  await vfs.release(fd3);
  t.ok(back.subarray(0, 100).equals(Buffer.alloc(100)), 'zeros before');
  t.ok(back.subarray(100, 100 + data.length).equals(data), 'the data');
  t.ok(back.subarray(100 + data.length).equals(Buffer.alloc(100)), 'zeros after');
  t.equal((await vfs.getattr('/bkt/huge')).blocks, Math.ceil(data.length / 512), 'du counts the data');
});

t.test('a write far past the end stores only what was written', async (t) => {
  const { vfs, meter } = await setup(t);
  const fd = await vfs.create('/bkt/seek', 0o644);
  const data = pattern(1000, 3);
  await vfs.write(fd, data, data.length, 10 * 1024 * 1024 * 1024);
  await vfs.release(fd);
  t.ok(meter.written <= 3 * 1000 + 3 * 64, `only the slice is stored (${meter.written} bytes put)`);
  t.equal((await vfs.getattr('/bkt/seek')).size, 10 * 1024 ** 3 + 1000);
  const fd2 = await vfs.open('/bkt/seek', 0);
  const out = Buffer.alloc(2000, 1);
  t.equal(await vfs.read(fd2, out, 2000, 10 * 1024 ** 3 - 1000), 2000);
  t.ok(out.subarray(0, 1000).equals(Buffer.alloc(1000)), 'the hole before it reads as zeros');
  t.ok(out.subarray(1000).equals(data));
  t.equal(await vfs.lseek(fd2, 0, 3), 10 * 1024 ** 3, 'SEEK_DATA finds it');
  t.equal(await vfs.lseek(fd2, 0, 4), 0, 'SEEK_HOLE at the start');
  t.equal(await vfs.lseek(fd2, 10 * 1024 ** 3 + 10, 4), 10 * 1024 ** 3 + 1000, 'SEEK_HOLE after it: the end');
  await t.rejects(
    vfs.lseek(fd2, 10 * 1024 ** 3 + 1000, 3),
    { message: 'no data past this offset' },
    'no data past the end: ENXIO',
  );
  await vfs.release(fd2);
});

t.test('4 KiB random writes store slices, read back exactly, and close compacts them', async (t) => {
  const { vfs, lilio, meter } = await setup(t);
  const size = 32 * CHUNK;
  const model = pattern(size, 11);
  let fd = await vfs.create('/bkt/db', 0o644);
  await vfs.write(fd, model, model.length, 0);
  await vfs.release(fd);
  const base = meter.written;
  fd = await vfs.open('/bkt/db', 2);
  let appBytes = 0;
  let seed = 5;
  for (let i = 0; i < 400; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const at = (seed % (size / 4096)) * 4096;
    const block = pattern(4096, i + 100);
    await vfs.write(fd, block, 4096, at);
    block.copy(model, at);
    appBytes += 4096;
    if (i % 64 === 63) await vfs.fsync(fd);
  }
  await vfs.fsync(fd);
  const amplification = (meter.written - base) / appBytes;
  t.ok(amplification <= 4, `backend bytes per byte written before compaction: ${amplification.toFixed(2)}`);
  const mid = await lilio.meta.getObject('bkt', 'db');
  t.equal(mid?.layout, 'extents', 'the version is layered');
  t.ok((mid?.chunks.length ?? 0) > 32, 'slices over the chunks');
  t.ok((await readAll(vfs, '/bkt/db', size)).equals(model), 'reads back as written while open');
  await vfs.release(fd);
  t.ok((await readAll(vfs, '/bkt/db', size)).equals(model), 'reads back as written after close');
  const record = await lilio.meta.getObject('bkt', 'db');
  t.equal(record?.layout, undefined, 'close compacted it back to one chunk per window');
  await lilio.collectGarbage({ graceMs: 0 });
  const stored = await meter.stored();
  t.ok(stored <= 1.1 * 3 * size, `stored ${(stored / (3 * size)).toFixed(3)}x the file after compaction`);
});

t.test('a log file fsynced as it grows is stored as whole chunks, not one slice per fsync', async (t) => {
  const { vfs, lilio, meter } = await setup(t);
  const fd = await vfs.create('/bkt/log', 0o644);
  const model = pattern(3 * CHUNK + 4096, 21);
  for (let at = 0; at < model.length; at += 4096) {
    await vfs.write(fd, model.subarray(at, at + 4096), 4096, at);
    await vfs.fsync(fd);
  }
  const record = await lilio.meta.getObject('bkt', 'log');
  // 3 full windows as 3 chunks, and the last 4 KiB as its own chunk: not 49 slices.
  t.equal(record?.chunks.length, 4, `chunks after 49 appends, each fsynced: ${record?.chunks.length}`);
  t.ok((await readAll(vfs, '/bkt/log', model.length)).equals(model), 'reads back while open');
  await vfs.release(fd);
  t.ok((await readAll(vfs, '/bkt/log', model.length)).equals(model), 'reads back after close');
  // Each byte stored at most twice (as a slice, then in its window's chunk) on each of 3 replicas.
  t.ok(meter.written <= 2 * 3 * model.length, `backend bytes ${(meter.written / model.length).toFixed(2)}x the file`);
  await lilio.collectGarbage({ graceMs: 0 });
  t.equal(await meter.stored(), 3 * model.length, 'the slices are garbage once their window is whole');
});

t.test('appends with fsyncs, truncates and reopens against a model', async (t) => {
  const { vfs, lilio } = await setup(t, { maxDirtyBuffers: 3 });
  let model = Buffer.alloc(0);
  let seed = 7;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let fd = await vfs.create('/bkt/applog', 0o644);
  for (let step = 0; step < 200; step++) {
    const op = rand(12);
    if (op < 8) {
      const length = [1, 700, 4096, 20_000, CHUNK - 5][rand(5)]!;
      const data = pattern(length, step + 3);
      await vfs.write(fd, data, length, model.length);
      model = Buffer.concat([model, data]);
      if (rand(2) === 0) await vfs.fsync(fd);
    } else if (op === 8) {
      const size = rand(model.length + 1);
      await vfs.ftruncate(fd, size);
      model = Buffer.from(model.subarray(0, size));
    } else if (op === 9) {
      // Another write inside what the last commits kept in memory.
      const at = rand(model.length + 1);
      const data = pattern(Math.min(300, model.length - at), step + 500);
      await vfs.write(fd, data, data.length, at);
      data.copy(model, at);
    } else if (op === 10) {
      await vfs.release(fd);
      fd = await vfs.open('/bkt/applog', 2);
    } else {
      await vfs.fsync(fd);
    }
    if (step % 20 === 19) {
      const back = await readAll(vfs, '/bkt/applog', model.length);
      if (!back.equals(model)) {
        t.fail(`content differs from the model after step ${step}`);
        return;
      }
    }
  }
  await vfs.release(fd);
  t.ok((await readAll(vfs, '/bkt/applog', model.length)).equals(model), 'the committed file matches the model');
  const record = await lilio.meta.getObject('bkt', 'applog');
  const windows = Math.ceil(model.length / CHUNK);
  t.ok((record?.chunks.length ?? 0) <= 4 * windows, `${record?.chunks.length} chunks for ${windows} windows`);
});

t.test('truncate down then up reads zeros; punch hole drops whole windows', async (t) => {
  const { vfs, lilio } = await setup(t);
  const size = 5 * CHUNK + 100;
  const model = pattern(size, 21);
  const fd = await vfs.create('/bkt/f', 0o644);
  await vfs.write(fd, model, size, 0);
  await vfs.fsync(fd);
  await vfs.ftruncate(fd, CHUNK + 10);
  await vfs.ftruncate(fd, size);
  model.fill(0, CHUNK + 10);
  t.ok((await readAll(vfs, '/bkt/f', size)).equals(model), 'cut bytes are zeros after growing again');
  await vfs.fallocate(fd, 3, 10, 3 * CHUNK);
  model.fill(0, 10, 10 + 3 * CHUNK);
  await vfs.release(fd);
  t.ok((await readAll(vfs, '/bkt/f', size)).equals(model), 'the punched range reads as zeros');
  const record = await lilio.meta.getObject('bkt', 'f');
  t.equal(record?.layout, 'extents');
  t.ok((record?.allocated ?? size) < 2 * CHUNK, `${record?.allocated} bytes allocated`);
});

t.test('inline files grow into chunks with their old bytes underneath', async (t) => {
  const engine = await testEngine({ inlineThreshold: 4096 });
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('bkt', { chunkSize: CHUNK });
  const vfs = new Vfs(engine.lilio, options());
  const small = pattern(3000, 1);
  let fd = await vfs.create('/bkt/s', 0o644);
  await vfs.write(fd, small, small.length, 0);
  await vfs.release(fd);
  t.ok((await engine.lilio.meta.getObject('bkt', 's'))?.inline, 'stored inline');
  fd = await vfs.open('/bkt/s', 2);
  const more = pattern(CHUNK, 2);
  await vfs.write(fd, more.subarray(0, 100), 100, 1000);
  await vfs.write(fd, more, more.length, 5000);
  await vfs.release(fd);
  const model = Buffer.alloc(5000 + CHUNK);
  small.copy(model);
  more.copy(model, 1000, 0, 100);
  more.copy(model, 5000);
  t.ok((await readAll(vfs, '/bkt/s', model.length)).equals(model));
});

t.test('random operations against a model: writes, truncates, holes, commits, reopen', async (t) => {
  const { vfs } = await setup(t, { maxDirtyBuffers: 3 });
  let model = Buffer.alloc(0);
  let seed = 99;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let fd = await vfs.create('/bkt/m', 0o644);
  for (let step = 0; step < 300; step++) {
    const op = rand(10);
    if (op < 6) {
      const length = [1, 100, 4096, CHUNK, CHUNK + 333][rand(5)]!;
      const at = rand(8 * CHUNK);
      const data = pattern(length, step + 1);
      await vfs.write(fd, data, length, at);
      if (at + length > model.length) model = Buffer.concat([model, Buffer.alloc(at + length - model.length)]);
      data.copy(model, at);
    } else if (op === 6) {
      const size = rand(9 * CHUNK);
      await vfs.ftruncate(fd, size);
      model =
        size <= model.length
          ? Buffer.from(model.subarray(0, size))
          : Buffer.concat([model, Buffer.alloc(size - model.length)]);
    } else if (op === 7) {
      await vfs.fsync(fd);
    } else if (op === 8) {
      const at = rand(model.length + 1);
      const length = 1 + rand(3 * CHUNK);
      await vfs.fallocate(fd, 3, at, length);
      model.fill(0, at, Math.min(model.length, at + length));
    } else {
      await vfs.release(fd);
      fd = await vfs.open('/bkt/m', 2);
    }
    if (step % 25 === 24 || step === 299) {
      const back = await readAll(vfs, '/bkt/m', model.length);
      if (!back.equals(model)) {
        t.fail(`content differs from the model after step ${step}`);
        return;
      }
    }
  }
  await vfs.release(fd);
  t.ok((await readAll(vfs, '/bkt/m', model.length)).equals(model), 'the committed file matches the model');
});

t.test('the dirty budget bounds unsealed buffers across files', async (t) => {
  const budget = new DirtyBudget(8 * CHUNK);
  const { vfs } = await setup(t, { budget });
  let peak = 0;
  const fds = await Promise.all(Array.from({ length: 20 }, (_, i) => vfs.create(`/bkt/many-${i}`, 0o644)));
  const models = fds.map(() => Buffer.alloc(10 * CHUNK));
  await Promise.all(
    fds.map(async (fd, i) => {
      for (let k = 0; k < 10; k++) {
        const at = ((k * 7 + i) % 10) * CHUNK + 100;
        const data = pattern(1000, i * 100 + k + 1);
        await vfs.write(fd, data, data.length, at);
        data.copy(models[i]!, at);
        peak = Math.max(peak, budget.bytes);
      }
    }),
  );
  t.ok(peak <= 8 * CHUNK + CHUNK, `at most ${peak / CHUNK} buffers were unsealed at once`);
  t.ok(peak >= 8 * CHUNK, 'the budget was reached (the test exercised it)');
  for (const fd of fds) await vfs.release(fd);
  for (const [i, model] of models.entries()) {
    const size = (await vfs.getattr(`/bkt/many-${i}`)).size;
    t.ok((await readAll(vfs, `/bkt/many-${i}`, size)).equals(model.subarray(0, size)), `file ${i}`);
  }
});
