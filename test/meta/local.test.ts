import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { DB_FILE } from '../../src/meta/local-db.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { metaContract } from '../contracts/meta.js';
import { bucketRecord, chunkRef, objectDraft } from '../contracts/meta-fixtures.js';

metaContract(t, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilio-meta-'));
  return {
    store: LocalMetadataStore.open({ path: join(dir, 'meta') }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lilio-meta-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function rawDb(t: Test, dir: string): Database.Database {
  const db = new Database(join(dir, DB_FILE));
  t.teardown(() => db.close());
  return db;
}

t.test('open: creates the directory, WAL mode, synchronous setting', async (t) => {
  const dir = join(await tempDir(t), 'nested', 'meta');
  const store = LocalMetadataStore.open({ path: dir, synchronous: 'full' });
  t.equal(store.file, join(dir, DB_FILE));
  const db = rawDb(t, dir);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  await store.close();
  const normal = LocalMetadataStore.open({ path: dir });
  await normal.close();
});

t.test('reopening keeps records and never reuses a version', async (t) => {
  const dir = await tempDir(t);
  const first = LocalMetadataStore.open({ path: dir });
  await first.createBucket(bucketRecord('photos'));
  const put = await first.putObject(objectDraft('photos', 'a'), 'absent');
  await first.deleteObject('photos', 'a');
  await first.close();
  const second = LocalMetadataStore.open({ path: dir });
  t.teardown(() => second.close());
  t.strictSame(await second.getBucket('photos'), (await second.listBuckets())[0]);
  const again = await second.putObject(objectDraft('photos', 'a'), 'absent');
  t.ok(again.version > put.version);
});

t.test('two connections: generation sees the other one, reads see its commits', async (t) => {
  const dir = await tempDir(t);
  const a = LocalMetadataStore.open({ path: dir });
  const b = LocalMetadataStore.open({ path: dir });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await a.createBucket(bucketRecord('photos'));
  const before = a.generation();
  t.equal(a.generation(), before, 'stable while nothing commits');
  const put = await b.putObject(objectDraft('photos', 'k'), 'absent');
  t.not(a.generation(), before, "another connection's commit moves it");
  t.strictSame(await a.getObject('photos', 'k'), put);
  await t.rejects(a.putObject(objectDraft('photos', 'k'), 'absent'), { code: 'CONFLICT' });
});

t.test('a lock held past the busy timeout is UnavailableError', async (t) => {
  const dir = await tempDir(t);
  const store = LocalMetadataStore.open({ path: dir, busyTimeoutMs: 100 });
  t.teardown(() => store.close());
  await store.createBucket(bucketRecord('photos'));
  const other = rawDb(t, dir);
  other.prepare('BEGIN IMMEDIATE').run();
  const started = Date.now();
  await t.rejects(store.putObject(objectDraft('photos', 'k'), 'any'), {
    code: 'UNAVAILABLE',
    message: new RegExp(`${DB_FILE}.*locked`),
  });
  t.ok(Date.now() - started >= 90, 'waited for the lock first');
  t.equal(await store.getObject('photos', 'k'), undefined, 'reads still work');
  other.prepare('ROLLBACK').run();
  await store.putObject(objectDraft('photos', 'k'), 'any');
});

t.test('a damaged or foreign database file is refused with its path', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, DB_FILE), Buffer.alloc(8192, 7));
  t.throws(() => LocalMetadataStore.open({ path: dir }), {
    code: 'INTEGRITY',
    message: new RegExp(join(dir, DB_FILE)),
  });

  const foreign = await tempDir(t);
  const db = new Database(join(foreign, DB_FILE));
  db.exec('CREATE TABLE mine (x)');
  db.close();
  t.throws(() => LocalMetadataStore.open({ path: foreign }), {
    code: 'INTEGRITY',
    message: /not a Lilio metadata store/,
  });

  const newer = await tempDir(t);
  await LocalMetadataStore.open({ path: newer }).close();
  const raw = new Database(join(newer, DB_FILE));
  raw.pragma('user_version = 99');
  raw.close();
  t.throws(() => LocalMetadataStore.open({ path: newer }), { code: 'UNSUPPORTED' });

  const blocked = join(await tempDir(t), 'file');
  await writeFile(blocked, 'not a directory');
  t.throws(() => LocalMetadataStore.open({ path: join(blocked, 'meta') }), {
    code: 'UNAVAILABLE',
    message: /file\/meta/,
  });
});

function directoriesOf(keys: string[]): Set<string> {
  const dirs = new Set<string>();
  for (const key of keys) {
    for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) dirs.add(key.slice(0, i + 1));
  }
  return dirs;
}

/** A tiny seeded PRNG, so a failing sequence can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function outcome<T>(promise: Promise<T>): Promise<unknown> {
  try {
    return { ok: await promise };
  } catch (err) {
    return { code: (err as { code?: string }).code };
  }
}

async function everything(store: MetadataStore, levels: string[]) {
  const listings: unknown[] = [];
  for (const prefix of levels) {
    for (const delimiter of ['/', undefined] as const) {
      const pages: unknown[] = [];
      let startAfter: string | undefined;
      do {
        const page = await store.list('photos', { prefix, delimiter, startAfter, limit: 3 });
        pages.push(page);
        startAfter = page.next;
      } while (startAfter !== undefined);
      listings.push(pages);
    }
  }
  // queuedAt is each store's own clock reading; which chunks are queued must agree.
  const garbage = (await store.peekGarbage!(undefined, 10_000)).map((entry) => entry.chunk);
  return { listings, garbage };
}

t.test('differential: random operations leave SQLite exactly where the memory store is', async (t) => {
  const dir = await tempDir(t);
  const local = LocalMetadataStore.open({ path: dir });
  const model = new MemoryMetadataStore();
  t.teardown(() => local.close());
  const rand = random(20240611);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const segments = ['a', 'b', 'é', '😀', 'a b'];
  const dirPath = () => `${Array.from({ length: 1 + Math.floor(rand() * 2) }, () => pick(segments)).join('/')}/`;
  const key = () => (rand() < 0.2 ? dirPath() : rand() < 0.5 ? pick(segments) : dirPath() + pick(segments));
  const chunks = Array.from({ length: 12 }, () => chunkRef());
  for (const store of [local, model]) await store.createBucket(bucketRecord('photos'));
  const outcomes = new Map<string, number>();
  for (let step = 0; step < 1500; step++) {
    const op = rand();
    let run: (store: MetadataStore) => Promise<unknown>;
    if (op < 0.45) {
      const draft = objectDraft('photos', key(), {
        chunks: [pick(chunks), pick(chunks)].filter((c, i, all) => all.indexOf(c) === i),
      });
      const expect = pick(['any', 'absent', { version: Math.floor(rand() * step) }] as const);
      run = (store) => store.putObject(structuredClone(draft), expect);
    } else if (op < 0.65) {
      const k = key();
      run = (store) => store.deleteObject('photos', k);
    } else if (op < 0.85) {
      const [from, to, replace] = [key(), key(), rand() < 0.5];
      run = (store) => store.renameObject('photos', from, to, { replace });
    } else {
      const [from, to] = [dirPath(), dirPath()];
      run = (store) => store.renamePrefix('photos', from, to);
    }
    const [got, want] = [await outcome(run(local)), await outcome(run(model))];
    const tally = `${op < 0.45 ? 'put' : op < 0.65 ? 'delete' : op < 0.85 ? 'rename' : 'renamePrefix'} ${(want as { code?: string }).code ?? 'ok'}`;
    outcomes.set(tally, (outcomes.get(tally) ?? 0) + 1);
    if (!isDeepStrictEqual(got, want)) {
      t.strictSame(got, want, `step ${step}`);
      return;
    }
    if (step % 100 === 99) {
      const levels = ['', 'a', 'a/', 'é/', '😀/a/', 'a b/', 'a/a b/', '😀/'];
      t.same(await everything(local, levels), await everything(model, levels), `state after step ${step}`);
    }
  }
  t.comment(
    [...outcomes]
      .sort()
      .map(([what, n]) => `${what}: ${n}`)
      .join(', '),
  );
  const db = rawDb(t, dir);
  const dirs = db.prepare(`SELECT prefix FROM dirs WHERE bucket = 'photos' ORDER BY prefix`).pluck().all() as string[];
  const keys = db.prepare(`SELECT key FROM objects WHERE bucket = 'photos'`).pluck().all() as string[];
  t.same(new Set(dirs), directoriesOf(keys), 'a directory row exists exactly where keys are under it');
  t.ok(keys.length > 10, `${keys.length} keys at the end`);
});
