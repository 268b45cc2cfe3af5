import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { DB_FILE } from '../../src/meta/local-db.js';
import { metaContract } from '../contracts/meta.js';
import { differential } from '../contracts/meta-differential.js';
import { bucketRecord, objectDraft } from '../contracts/meta-fixtures.js';

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

t.test('a schema-1 file (before sessions) is migrated in place, its records and garbage kept', async (t) => {
  const dir = await tempDir(t);
  const old = LocalMetadataStore.open({ path: dir });
  await old.createBucket(bucketRecord('photos'));
  const record = await old.putObject(objectDraft('photos', 'a'), 'absent');
  await old.putObject(objectDraft('photos', 'a'), 'any');
  await old.close();
  // What a file written by the release before sessions looks like.
  const raw = new Database(join(dir, DB_FILE));
  raw.exec('DROP TABLE read_holds; DROP TABLE write_holds; DROP TABLE sessions;');
  raw.pragma('user_version = 1');
  raw.close();

  const store = LocalMetadataStore.open({ path: dir });
  t.teardown(() => store.close());
  t.equal(rawDb(t, dir).pragma('user_version', { simple: true }), 4);
  t.equal((await store.getObject('photos', 'a'))?.key, 'a');
  t.same(
    (await store.peekGarbage(undefined, 10)).map((g) => g.chunk.id),
    record.chunks.map((c) => c.id),
  );
  const session = await store.openSession({ pid: 1, host: 'h', role: 'r', startedAt: 0 }, 60_000);
  await store.holdRead(
    session,
    record.chunks.map((c) => c.id),
  );
  t.same(await store.takeGarbage(Date.now() + 1, 10), [], 'holds work on the migrated file');
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

t.test('differential: random operations leave SQLite exactly where the memory store is', async (t) => {
  const dir = await tempDir(t);
  const local = LocalMetadataStore.open({ path: dir });
  t.teardown(() => local.close());
  await differential(t, local, { seed: 20240611, steps: 1500 });
  const db = rawDb(t, dir);
  const dirs = db.prepare(`SELECT prefix FROM dirs WHERE bucket = 'photos' ORDER BY prefix`).pluck().all() as string[];
  const keys = db.prepare(`SELECT key FROM objects WHERE bucket = 'photos'`).pluck().all() as string[];
  t.same(new Set(dirs), directoriesOf(keys), 'a directory row exists exactly where keys are under it');
  t.ok(keys.length > 10, `${keys.length} keys at the end`);
});

t.test('a schema 1 database (before the repair queue) migrates on open and keeps its data', async (t) => {
  const dir = await tempDir(t);
  const first = LocalMetadataStore.open({ path: dir });
  await first.createBucket(bucketRecord('photos'));
  const committed = await first.putObject(objectDraft('photos', 'kept.jpg'), 'absent');
  await first.close();
  // What a Lilio of schema 1 left: no repairs table.
  const raw = new Database(join(dir, DB_FILE));
  raw.exec('DROP TABLE repairs');
  raw.pragma('user_version = 1');
  raw.close();

  const store = LocalMetadataStore.open({ path: dir });
  t.teardown(() => store.close());
  const db = rawDb(t, dir);
  t.equal(db.pragma('user_version', { simple: true }), 4, 'now schema 4');
  t.strictSame(await store.getObject('photos', 'kept.jpg'), committed, 'objects survive the migration');
  const chunk = committed.chunks[0]!;
  await store.queueRepairs([{ chunk, backends: ['disk-a'], queuedAt: 1 }]);
  t.equal(await store.repairCount(), 1, 'the repair queue works');
  const again = LocalMetadataStore.open({ path: dir });
  t.strictSame(await again.peekRepairs(undefined, 5), [{ chunk, backends: ['disk-a'], queuedAt: 1 }], 'and persists');
  await again.close();
});

t.test('a schema 3 database (before multipart uploads) migrates on open and keeps its data', async (t) => {
  const dir = await tempDir(t);
  const first = LocalMetadataStore.open({ path: dir });
  await first.createBucket(bucketRecord('photos'));
  const committed = await first.putObject(objectDraft('photos', 'kept.jpg'), 'absent');
  await first.close();
  const raw = new Database(join(dir, DB_FILE));
  raw.exec('DROP TABLE parts; DROP TABLE uploads');
  raw.pragma('user_version = 3');
  raw.close();

  const store = LocalMetadataStore.open({ path: dir });
  t.teardown(() => store.close());
  t.equal(rawDb(t, dir).pragma('user_version', { simple: true }), 4, 'now schema 4');
  t.strictSame(await store.getObject('photos', 'kept.jpg'), committed, 'objects survive the migration');
  const upload = { id: `${'0'.repeat(12)}${'b'.repeat(24)}`, bucket: 'photos', key: 'k', initiated: 1, touchedAt: 1 };
  await store.createUpload(upload);
  t.strictSame(await store.getUpload(upload.id), upload, 'uploads work');
});
