import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalBackend } from '../../src/backends/local.js';
import { backendContract, chunkId, collect } from '../contracts/backend.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'lilio-local-'));
}

/** Every file under dir, relative, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

for (const fsync of [false, true]) {
  t.test(`local backend contract (fsync: ${fsync})`, async (t) => {
    backendContract(t, async () => {
      const dir = await tempDir();
      return {
        backend: new LocalBackend({ name: 'disk', path: join(dir, 'chunks'), fsync }),
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    });
  });
}

t.test('local-only behaviour', async (t) => {
  let dir = '';
  t.beforeEach(async () => {
    dir = await tempDir();
  });
  t.afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  t.test('chunks fan out as ab/cd/abcd... and leave no temp files', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    t.equal(backend.type, 'local');
    const ids = Array.from({ length: 30 }, chunkId);
    await Promise.all(ids.map((id) => backend.put(id, randomBytes(1000))));
    const files = await filesUnder(dir);
    t.same(files.sort(), ids.map((id) => `${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`).sort());
    t.notOk(
      files.some((f) => f.endsWith('.tmp')),
      'no temp files',
    );
    await backend.health();
    t.equal((await filesUnder(dir)).length, 30, 'the health probe cleaned up');
  });

  t.test('a missing path is created; a file in its place is a clear error', async (t) => {
    const nested = join(dir, 'a', 'b', 'c');
    const backend = new LocalBackend({ name: 'disk', path: nested });
    const id = chunkId();
    await backend.put(id, Buffer.from('x'));
    t.equal((await backend.get(id)).toString(), 'x');

    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'hello');
    const broken = new LocalBackend({ name: 'broken', path: file });
    await t.rejects(broken.put(chunkId(), Buffer.from('x')), {
      code: 'CONFIG',
      message: /exists but is not a directory/,
    });
    await t.rejects(broken.get(chunkId()), { code: 'CONFIG' });
    const health = await broken.health();
    t.equal(health.ok, false);
    t.match(health.error, /not a directory/);
    const under = new LocalBackend({ name: 'under', path: join(file, 'sub') });
    await t.rejects(under.put(chunkId(), Buffer.from('x')), { code: 'CONFIG' });
  });

  t.test('ids with ../ never touch anything outside the directory', async (t) => {
    const inside = join(dir, 'inside');
    const backend = new LocalBackend({ name: 'disk', path: inside });
    const escapes = ['../escaped', '../../escaped', `../${'a'.repeat(29)}`, 'ab/../../escaped', '/tmp/escaped'];
    for (const id of escapes) {
      await t.rejects(backend.put(id, Buffer.from('x')), { code: 'INVALID' }, id);
      await t.rejects(backend.delete(id), { code: 'INVALID' }, id);
    }
    t.same(await readdir(dir), [], 'nothing was created, not even the backend directory');
  });

  t.test('list skips temp files, strays and misplaced names', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const id = chunkId();
    await backend.put(id, Buffer.from('real'));
    const sub = join(dir, id.slice(0, 2), id.slice(2, 4));
    await writeFile(join(sub, `.${id}.abcdef.tmp`), 'partial');
    await writeFile(join(sub, 'README'), 'stray');
    await writeFile(join(sub, 'ffffffffffffffffffffffffffffffff'), 'wrong directory for this id');
    await writeFile(join(dir, 'notes.txt'), 'stray');
    await mkdir(join(dir, 'zz', 'yy'), { recursive: true });
    t.same(await collect(backend.list()), [id]);
  });

  t.test('a failed write leaves no partial chunk and no temp file', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const id = chunkId();
    // A directory squatting on the chunk's name makes the final rename fail after the data was written.
    await mkdir(join(dir, id.slice(0, 2), id.slice(2, 4), id), { recursive: true });
    await t.rejects(backend.put(id, randomBytes(100_000)), { code: 'UNAVAILABLE' });
    t.same(await filesUnder(dir), [], 'no temp file left behind');
  });

  t.test('a concurrent reader sees all of a chunk or none of it', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const id = chunkId();
    const first = Buffer.alloc(8 * 1024 * 1024, 1);
    const second = Buffer.alloc(16 * 1024 * 1024, 2);
    let observations = 0;
    let torn = 0;
    let writing = true;
    const reader = (async () => {
      while (writing) {
        try {
          const got = await backend.get(id);
          observations++;
          if (!got.equals(first) && !got.equals(second)) torn++;
        } catch (err) {
          if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
        }
      }
    })();
    await backend.put(id, first);
    await backend.put(id, second);
    await backend.put(id, first);
    writing = false;
    await reader;
    t.equal(torn, 0, `no torn reads in ${observations} observations`);
  });

  t.test('a fan-out directory removed behind our back is recreated', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const a = `abcd${'0'.repeat(28)}`;
    const b = `abcd${'1'.repeat(28)}`;
    await backend.put(a, Buffer.from('a'));
    await rm(join(dir, 'ab'), { recursive: true });
    await backend.put(b, Buffer.from('b'));
    t.equal((await backend.get(b)).toString(), 'b');
  });

  t.test('putStream stores exactly the announced bytes, or nothing', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const data = randomBytes(300_000);
    async function* pieces(bytes: Buffer, fail?: Error): AsyncGenerator<Buffer> {
      for (let i = 0; i < bytes.length; i += 65_536) {
        if (fail && i > 100_000) throw fail;
        yield bytes.subarray(i, i + 65_536);
      }
    }
    const id = chunkId();
    await backend.putStream(id, pieces(data), data.length);
    t.ok((await backend.get(id)).equals(data), 'streamed chunk reads back');

    const short = chunkId();
    await t.rejects(backend.putStream(short, pieces(data.subarray(0, 1000)), data.length), {
      code: 'INVALID',
      message: /1000 of the announced/,
    });
    const long = chunkId();
    await t.rejects(backend.putStream(long, pieces(data), 1000), { code: 'INVALID', message: /more than/ });
    const cut = chunkId();
    await t.rejects(backend.putStream(cut, pieces(data, new Error('client went away')), data.length), {
      code: 'UNAVAILABLE',
      message: /client went away/,
    });
    for (const failed of [short, long, cut]) t.equal(await backend.stat(failed), undefined, 'nothing stored');
    t.same(await filesUnder(dir), [`${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`], 'and no temp file left');

    const { size, stream } = await backend.getStream(id);
    t.equal(size, data.length);
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    t.ok(Buffer.concat(parts).equals(data), 'getStream streams the bytes');
    await t.rejects(backend.getStream(chunkId()), { code: 'NOT_FOUND' });
    await t.rejects(backend.getStream('../x'), { code: 'INVALID' });
  });

  t.test('temporary files a crash left behind are swept once old; chunks and young ones stay', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const id = chunkId();
    await backend.put(id, Buffer.from('real'));
    const sub = join(dir, id.slice(0, 2), id.slice(2, 4));
    const old = join(sub, `.${id}.0123456789ab.tmp`);
    const young = join(sub, `.${id}.ba9876543210.tmp`);
    const probe = join(dir, '.health.0123456789ab.tmp');
    const stray = join(sub, 'notes.tmp');
    for (const file of [old, young, probe, stray]) await writeFile(file, 'partial');
    const past = new Date(Date.now() - 3_600_000);
    for (const file of [old, probe, stray]) await utimes(file, past, past);
    t.equal(await backend.sweepTemporaryFiles(600_000), 2, 'the old chunk temp file and the old probe');
    t.same(
      (await filesUnder(dir)).sort(),
      [
        `${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`,
        `${id.slice(0, 2)}/${id.slice(2, 4)}/.${id}.ba9876543210.tmp`,
        `${id.slice(0, 2)}/${id.slice(2, 4)}/notes.tmp`,
      ].sort(),
      'the chunk, the young temp file and names that are not ours stay',
    );
  });

  t.test('info reports the filesystem capacity', async (t) => {
    const backend = new LocalBackend({ name: 'disk', path: dir });
    const info = await backend.info();
    t.equal(info.location, dir);
    t.ok(info.totalBytes! > 0);
    t.ok(info.freeBytes! >= 0 && info.freeBytes! <= info.totalBytes!);
  });
});

/** A 1 MiB tmpfs to fill up, or why there is none (mounting needs root and mount permission). */
async function mountTinyTmpfs(): Promise<{ dir: string; skip: string | false }> {
  const dir = await tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    return { dir, skip: false };
  } catch (err) {
    const reason = (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
    return { dir, skip: `cannot mount a 1 MiB tmpfs to fill up: ${reason}` };
  }
}

const tiny = await mountTinyTmpfs();
// On the root test, so the unmount happens however the subtest ends.
t.teardown(async () => {
  if (!tiny.skip) execFileSync('umount', [tiny.dir]);
  await rm(tiny.dir, { recursive: true, force: true });
});

t.test('a full disk maps to NO_SPACE and leaves nothing behind', { skip: tiny.skip }, async (t) => {
  const dir = tiny.dir;
  const backend = new LocalBackend({ name: 'tiny', path: dir });
  const small = chunkId();
  await backend.put(small, randomBytes(100_000));
  const big = chunkId();
  await t.rejects(backend.put(big, randomBytes(2 * 1024 * 1024)), { code: 'NO_SPACE', message: /no space left/ });
  t.equal(await backend.stat(big), undefined, 'no partial chunk');
  t.same(await collect(backend.list()), [small]);
  t.notOk(
    (await filesUnder(dir)).some((f) => f.endsWith('.tmp')),
    'the temp file was removed',
  );
  t.equal((await backend.get(small)).length, 100_000, 'earlier chunks are intact');
  await backend.put(chunkId(), randomBytes(100_000));
  t.pass('space freed by the failed write is usable again');
});

/** Bytes in shared memory, as the engine's chunk pools hand them over (they take the disk-thread path). */
function shared(bytes: Buffer): Buffer {
  const view = Buffer.from(new SharedArrayBuffer(bytes.length + 4096), 0, bytes.length);
  bytes.copy(view);
  return view;
}

t.test('chunks from shared memory go through the disk threads, direct or buffered, byte-exact', async (t) => {
  // tmpdir is a disk filesystem here (O_DIRECT works); tmpfs refuses O_DIRECT on this kernel and
  // must fall back to buffered I/O with the same result.
  const places = [{ label: 'disk', dir: await tempDir() }];
  if (existsSync('/dev/shm')) places.push({ label: 'tmpfs', dir: await mkdtemp('/dev/shm/lilio-local-') });
  t.teardown(() => Promise.all(places.map((p) => rm(p.dir, { recursive: true, force: true }))));
  for (const { label, dir } of places) {
    const backend = new LocalBackend({ name: label, path: dir });
    t.teardown(() => backend.close());
    // Whole blocks, odd sizes (padded for direct I/O, then cut), the ciphertext of a full chunk.
    for (const size of [64 * 1024, 64 * 1024 + 1, 300_007, 1024 * 1024 + 28]) {
      const id = chunkId();
      const data = randomBytes(size);
      await backend.put(id, shared(data));
      t.equal(await backend.stat(id), size, `${label}: ${size} B stored at its exact length`);
      t.ok((await backend.get(id)).equals(data), `${label}: ${size} B read back exactly`);
      const sub = shared(data).subarray(7, size);
      const id2 = chunkId();
      await backend.put(id2, sub);
      t.ok((await backend.get(id2)).equals(data.subarray(7)), `${label}: a view not at the start of its memory`);
    }
    t.notOk(
      (await filesUnder(dir)).some((f) => f.endsWith('.tmp')),
      `${label}: no temp files left`,
    );
    const fresh = new LocalBackend({ name: `${label}-again`, path: dir });
    t.teardown(() => fresh.close());
    t.equal((await collect(fresh.list())).length, 8, `${label}: every chunk is there for another reader`);
  }
  if (!tiny.skip) {
    const full = new LocalBackend({ name: 'full', path: join(tiny.dir, 'shared-full') });
    t.teardown(() => full.close());
    await t.rejects(full.put(chunkId(), shared(randomBytes(3 * 1024 * 1024))), { code: 'NO_SPACE' }, 'tmpfs full');
  }
});
