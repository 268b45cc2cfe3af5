import { chmodSync, closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  IntegrityError,
  LilioError,
  NoSpaceError,
  PermissionError,
  ReadOnlyError,
  UnavailableError,
  UnsupportedError,
} from '../core/errors.js';
import { REPAIRS_SCHEMA } from './local-repairs.js';
import { UPLOADS_SCHEMA } from './local-uploads.js';

/**
 * The SQLite file behind LocalMetadataStore: where it lives, how a connection
 * is set up, the schema, and how SQLite's failures become LilioErrors.
 */

export const DB_FILE = 'lilio.db';
/** 1: objects, dirs, garbage. 2: sessions and their holds. 3: the repair queue. 4: multipart uploads. */
export const SCHEMA_VERSION = 4;

/**
 * How long a writer waits for another process's transaction before giving up
 * with UnavailableError. Commits take microseconds; only a stuck process or a
 * huge renamePrefix holds the lock this long.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/**
 * Laid out for the mount's hot paths and for few pages written per commit
 * (each page is a WAL frame; a commit's cost grows with its page count):
 * - objects is a rowid table, not WITHOUT ROWID: a 100k-chunk list makes a
 *   row of megabytes, and an index b-tree (which WITHOUT ROWID tables are)
 *   reads a spilled cell's whole payload each time a search compares against
 *   it, so every lookup near such a row would read megabytes. Summaries sit
 *   before the chunk list in each row, so a listing reads them from the row's
 *   first page and never follows the overflow pages the list spills into.
 * - `parent` is the level a key is listed at ('a/b/' for 'a/b/c', 'a/' for the
 *   marker 'a/b/'); (bucket, parent, key) makes listing a level one range scan.
 * - dirs holds one row per directory prefix that has any key under it (its
 *   marker included), so implicit directories show up in their parent's
 *   listing without a scan. Rows record existence, not a count: creating a key
 *   in an existing directory then writes nothing there, and removing one probes
 *   the now-smaller range (a read) before dropping the row.
 */
const SCHEMA = `
CREATE TABLE buckets (
  name TEXT PRIMARY KEY,
  record TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE objects (
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  parent TEXT NOT NULL,
  version INTEGER NOT NULL,
  summary TEXT NOT NULL,
  inline TEXT,
  chunks TEXT NOT NULL,
  PRIMARY KEY (bucket, key)
) STRICT;
CREATE INDEX objects_by_level ON objects (bucket, parent, key);

CREATE TABLE dirs (
  bucket TEXT NOT NULL,
  prefix TEXT NOT NULL,
  parent TEXT NOT NULL,
  PRIMARY KEY (bucket, prefix)
) STRICT, WITHOUT ROWID;
CREATE INDEX dirs_by_level ON dirs (bucket, parent, prefix);

-- Keyed by age: chunks are queued at commit time, so new entries land on the
-- last page instead of splitting pages all over a chunk-id-ordered tree, and
-- takeGarbage reads the oldest entries off the front.
CREATE TABLE garbage (
  queued_at INTEGER NOT NULL,
  chunk_id TEXT NOT NULL,
  chunk TEXT NOT NULL,
  PRIMARY KEY (queued_at, chunk_id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX garbage_by_chunk ON garbage (chunk_id);

-- One global version counter: a key deleted and created again never gets a
-- version it had before, so a compare-and-set cannot succeed against a ghost.
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('version', 0);
`;

/**
 * Sessions (schema 2): one row per process using the store, alive while
 * expires_at is in the future (renewed by its owner). Holds name chunks by id:
 * write_holds has one row per sealed, uncommitted chunk (a commit deletes the
 * rows of the chunks it references); read_holds one row per chunk of each
 * version an open file reads. Both are read only when garbage is handed out
 * (keyed by chunk id for that) and dropped by session (indexed for that).
 */
const SESSIONS_SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  info TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  open_files INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS write_holds (
  chunk_id TEXT PRIMARY KEY,
  session TEXT NOT NULL,
  chunk TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS write_holds_by_session ON write_holds (session);

CREATE TABLE IF NOT EXISTS read_holds (
  chunk_id TEXT NOT NULL,
  session TEXT NOT NULL,
  hold TEXT NOT NULL,
  PRIMARY KEY (chunk_id, session, hold)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS read_holds_by_session ON read_holds (session, hold);
`;

export type Synchronous = 'normal' | 'full';

/** Opens (creating when needed) DIR/lilio.db, ready for use by several processes at once. */
export function openDatabase(
  dir: string,
  synchronous: Synchronous,
  busyTimeoutMs: number,
): { db: Database.Database; file: string } {
  const file = join(dir, DB_FILE);
  try {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    keepPrivate(dir, PRIVATE_DIR);
    createPrivateFile(file);
    for (const path of [file, `${file}-wal`, `${file}-shm`]) keepPrivate(path, PRIVATE_FILE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = `cannot set up metadata directory ${dir}: ${(err as Error).message}`;
    throw code === 'EACCES' || code === 'EPERM' ? new PermissionError(message) : new UnavailableError(message);
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(file);
    // Before anything that may touch the file: even switching to WAL waits on other openers.
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new UnavailableError(`metadata database ${file} cannot use WAL mode (got "${mode}")`);
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('temp_store = MEMORY');
    db.pragma('cache_size = -16384');
    // Keeps the WAL from staying huge after a burst (a big renamePrefix) once it is checkpointed.
    db.pragma('journal_size_limit = 67108864');
    const conn = db;
    // The write lock only when the schema needs work: a store in use by another process (holding
    // the lock for a while) opens without waiting. migrate() checks again under the lock.
    if (db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
      conn.transaction(() => migrate(conn, file)).immediate();
    }
    return { db, file };
  } catch (err) {
    db?.close();
    throw sqliteFailure(file, err);
  }
}

/**
 * Metadata is for the owner's processes only: it names every object and
 * holds the buckets' wrapped keys and, for unencrypted buckets, small files
 * and symlink targets inline.
 */
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/** SQLite gives the -wal and -shm files the database file's mode, so creating that one 0600 covers all three. */
function createPrivateFile(file: string): void {
  try {
    closeSync(openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, PRIVATE_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Takes group and other bits off a path made by an older Lilio or a wide
 * umask. Only paths this user owns: chmod of another user's file fails, and
 * a store shared on purpose (root reading a user's store) is not ours to change.
 */
function keepPrivate(path: string, mode: number): void {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (stat.uid !== process.getuid?.() || (stat.mode & 0o777 & ~mode) === 0) return;
  chmodSync(path, stat.mode & mode);
}

/**
 * How a database of schema version v becomes v + 1: MIGRATIONS[v]. A new
 * database gets SCHEMA (version 1) and then every step, so the two paths
 * cannot drift apart. Steps only add, and only what is missing (IF NOT
 * EXISTS: a file that some development build already gave a later table
 * still migrates). A process of an older Lilio refuses
 * the newer file (user_version) rather than misreading it.
 */
const MIGRATIONS: Record<number, string> = {
  1: SESSIONS_SCHEMA,
  2: REPAIRS_SCHEMA,
  3: UPLOADS_SCHEMA,
};

function migrate(db: Database.Database, file: string): void {
  let version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) {
    throw new UnsupportedError(
      `metadata database ${file} has schema ${version}, newer than this Lilio understands (${SCHEMA_VERSION})`,
    );
  }
  if (version === 0) {
    const tables = db.prepare<[], number>("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get();
    if (tables) throw new IntegrityError(`${file} is a SQLite database but not a Lilio metadata store`);
    db.exec(SCHEMA);
    version = 1;
  }
  for (; version < SCHEMA_VERSION; version++) db.exec(MIGRATIONS[version]!);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

/** Every failure leaving the local store is a LilioError that names the database file. */
export function sqliteFailure(file: string, err: unknown): LilioError {
  if (err instanceof LilioError) return err;
  if (err instanceof Database.SqliteError) {
    const code = err.code;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new UnavailableError(`metadata database ${file} stayed locked by another process past the busy timeout`, {
        cause: err,
      });
    }
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
      return new IntegrityError(
        `metadata database ${file} is corrupt or not a SQLite database (${code}: ${err.message})`,
      );
    }
    if (code === 'SQLITE_FULL') return new NoSpaceError(`no space left to grow metadata database ${file}`);
    if (code.startsWith('SQLITE_READONLY'))
      return new ReadOnlyError(`metadata database ${file} is read-only (${code})`);
    if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM')) {
      return new UnavailableError(`cannot open metadata database ${file} (${code}: ${err.message})`, { cause: err });
    }
    return new UnavailableError(`metadata database ${file}: ${code}: ${err.message}`, { cause: err });
  }
  if (err instanceof SyntaxError) {
    return new IntegrityError(`metadata database ${file} holds a record that is not valid JSON: ${err.message}`);
  }
  return new UnavailableError(`metadata database ${file}: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}
