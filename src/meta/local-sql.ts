import type Database from 'better-sqlite3';

/**
 * Every statement LocalMetadataStore runs, prepared once per connection.
 *
 * Range bounds: a lower bound is always inclusive (resuming after a key binds
 * key + '\0', its successor) and an upper bound is always `< CAST(? AS TEXT)`,
 * so each listing has one statement shape. An unbounded end binds the single
 * byte 0xF5, which no UTF-8 text reaches; CAST keeps it TEXT, since SQLite
 * would otherwise sort any BLOB after every string.
 */

export interface ObjectRow {
  key: string;
  version: number;
  summary: string;
  inline: string | null;
  chunks: string;
}

/** Listings read rows as arrays (raw mode): cheaper than an object per row, which a big directory notices. */
export type SummaryRow = [key: string, version: number, summary: string];

export interface HeadRow {
  version: number;
  /** The chunk list, or null when it is longer than the limit asked for. */
  chunks: string | null;
}

export interface GarbageRow {
  chunk: string;
  queued_at: number;
}

/** Upper bound past every key: 0xF5 never occurs in UTF-8. */
export const KEY_CEILING = Buffer.from([0xf5]);

type Bound = string | Buffer;

/** Garbage queued twice keeps the later time: reaping early is the one unsafe mistake. */
const ENQUEUE =
  'ON CONFLICT (chunk_id) DO UPDATE SET chunk = excluded.chunk, queued_at = max(queued_at, excluded.queued_at)';

export function prepareStatements(db: Database.Database) {
  return {
    bucketExists: db.prepare<[string], number>('SELECT 1 FROM buckets WHERE name = ?').pluck(),
    getBucket: db.prepare<[string], string>('SELECT record FROM buckets WHERE name = ?').pluck(),
    listBuckets: db.prepare<[], string>('SELECT record FROM buckets ORDER BY name').pluck(),
    insertBucket: db.prepare<[string, string]>('INSERT INTO buckets (name, record) VALUES (?, ?)'),
    updateBucket: db.prepare<[string, string]>('UPDATE buckets SET record = ? WHERE name = ?'),
    deleteBucket: db.prepare<[string]>('DELETE FROM buckets WHERE name = ?'),
    anyObject: db.prepare<[string], number>('SELECT 1 FROM objects WHERE bucket = ? LIMIT 1').pluck(),

    getObject: db.prepare<[string, string], ObjectRow>(
      'SELECT key, version, summary, inline, chunks FROM objects WHERE bucket = ? AND key = ?',
    ),
    // octet_length reads the length from the row header, so a long list is not loaded just to be skipped.
    head: db.prepare<[number, string, string], HeadRow>(
      'SELECT version, CASE WHEN octet_length(chunks) <= ? THEN chunks END AS chunks FROM objects WHERE bucket = ? AND key = ?',
    ),
    insertObject: db.prepare<[string, string, string, number, string, string | null, string]>(
      'INSERT INTO objects (bucket, key, parent, version, summary, inline, chunks) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    updateObject: db.prepare<[number, string, string | null, string, string, string]>(
      'UPDATE objects SET version = ?, summary = ?, inline = ?, chunks = ? WHERE bucket = ? AND key = ?',
    ),
    moveObject: db.prepare<[string, string, number, string, string]>(
      'UPDATE objects SET key = ?, parent = ?, version = ? WHERE bucket = ? AND key = ?',
    ),
    removeObject: db.prepare<[string, string]>('DELETE FROM objects WHERE bucket = ? AND key = ?'),
    nextVersions: db
      .prepare<[number], number>("UPDATE counters SET value = value + ? WHERE name = 'version' RETURNING value")
      .pluck(),

    rangeKeys: db
      .prepare<[string, string, Bound, number], string>(
        'SELECT key FROM objects WHERE bucket = ? AND key >= ? AND key < CAST(? AS TEXT) ORDER BY key LIMIT ?',
      )
      .pluck(),
    rangeSummaries: db
      .prepare<[string, string, Bound, number], SummaryRow>(
        'SELECT key, version, summary FROM objects WHERE bucket = ? AND key >= ? AND key < CAST(? AS TEXT) ORDER BY key LIMIT ?',
      )
      .raw(),
    rangeRecords: db.prepare<[string, string, number], ObjectRow>(
      'SELECT key, version, summary, inline, chunks FROM objects WHERE bucket = ? AND key >= ? ORDER BY key LIMIT ?',
    ),
    // Markers are listed through `dirs`, as prefixes; here only the level's other keys. Without
    // INDEXED BY the planner may take the primary key's range instead and scan the whole bucket.
    levelSummaries: db
      .prepare<[string, string, string, Bound, number], SummaryRow>(
        `SELECT key, version, summary FROM objects INDEXED BY objects_by_level
       WHERE bucket = ? AND parent = ? AND key >= ? AND key < CAST(? AS TEXT) AND substr(key, -1) <> '/'
       ORDER BY key LIMIT ?`,
      )
      .raw(),
    levelDirs: db
      .prepare<[string, string, string, Bound, number], string>(
        `SELECT prefix FROM dirs WHERE bucket = ? AND parent = ? AND prefix >= ? AND prefix < CAST(? AS TEXT)
         ORDER BY prefix LIMIT ?`,
      )
      .pluck(),

    // A directory that already exists is left untouched: no page is written for it.
    addDir: db.prepare<[string, string, string]>(
      'INSERT INTO dirs (bucket, prefix, parent) VALUES (?, ?, ?) ON CONFLICT (bucket, prefix) DO NOTHING',
    ),
    dropDir: db.prepare<[string, string]>('DELETE FROM dirs WHERE bucket = ? AND prefix = ?'),
    // SQLite's substr and length both count characters, so the two agree on where the old prefix ends.
    moveDirsUnder: db.prepare<{ bucket: string; from: string; to: string; end: Bound }>(
      `UPDATE dirs SET prefix = :to || substr(prefix, length(:from) + 1), parent = :to || substr(parent, length(:from) + 1)
       WHERE bucket = :bucket AND prefix > :from AND prefix < CAST(:end AS TEXT)`,
    ),
    dropBucketDirs: db.prepare<[string]>('DELETE FROM dirs WHERE bucket = ?'),

    // The chunks of the stored record at (bucket, key) that `successor` (a JSON chunk list) does not keep.
    retireChunks: db.prepare<{ bucket: string; key: string; successor: string; now: number }>(
      `INSERT INTO garbage (chunk_id, chunk, queued_at)
       SELECT old.value ->> 'id', old.value, :now FROM objects o, json_each(o.chunks) old
       WHERE o.bucket = :bucket AND o.key = :key
         AND old.value ->> 'id' NOT IN (SELECT value ->> 'id' FROM json_each(:successor))
       ${ENQUEUE}`,
    ),
    rescueChunk: db.prepare<[string]>('DELETE FROM garbage WHERE chunk_id = ?'),
    rescueChunks: db.prepare<[string]>(
      "DELETE FROM garbage WHERE chunk_id IN (SELECT value ->> 'id' FROM json_each(?))",
    ),
    rescueRange: db.prepare<[string, string, Bound]>(
      `DELETE FROM garbage WHERE chunk_id IN (
         SELECT c.value ->> 'id' FROM objects o, json_each(o.chunks) c
         WHERE o.bucket = ? AND o.key >= ? AND o.key < CAST(? AS TEXT))`,
    ),
    anyGarbage: db.prepare<[], number>('SELECT EXISTS (SELECT 1 FROM garbage)').pluck(),
    enqueue: db.prepare<[string, string, number]>(
      `INSERT INTO garbage (chunk_id, chunk, queued_at) VALUES (?, ?, ?) ${ENQUEUE}`,
    ),
    // Chunks a live session holds stay queued: checked in the statement that takes the rest.
    takeGarbage: db.prepare<{ before: number; now: number; limit: number }, GarbageRow>(
      `DELETE FROM garbage WHERE chunk_id IN (
         SELECT g.chunk_id FROM garbage g WHERE g.queued_at < :before
           AND NOT EXISTS (SELECT 1 FROM read_holds h JOIN sessions s ON s.id = h.session
                           WHERE h.chunk_id = g.chunk_id AND s.expires_at > :now)
           AND NOT EXISTS (SELECT 1 FROM write_holds w JOIN sessions s ON s.id = w.session
                           WHERE w.chunk_id = g.chunk_id AND s.expires_at > :now)
         ORDER BY g.queued_at, g.chunk_id LIMIT :limit)
       RETURNING chunk, queued_at`,
    ),
    peekGarbage: db.prepare<[string, number], GarbageRow>(
      'SELECT chunk, queued_at FROM garbage WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?',
    ),
    garbageCount: db.prepare<[], number>('SELECT count(*) FROM garbage').pluck(),

    ...sessionStatements(db),

    dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
  };
}

export interface SessionRow {
  id: string;
  info: string;
  expires_at: number;
  open_files: number;
  held: number;
}

/** Sessions and holds (see SESSIONS_SCHEMA in local-db.ts). */
function sessionStatements(db: Database.Database) {
  return {
    insertSession: db.prepare<[string, string, number]>('INSERT INTO sessions (id, info, expires_at) VALUES (?, ?, ?)'),
    renewSession: db.prepare<[number, number, string, number]>(
      'UPDATE sessions SET expires_at = ?, open_files = ? WHERE id = ? AND expires_at > ?',
    ),
    liveSession: db.prepare<[string, number], number>('SELECT 1 FROM sessions WHERE id = ? AND expires_at > ?').pluck(),
    expiredSessions: db.prepare<[number], string>('SELECT id FROM sessions WHERE expires_at <= ?').pluck(),
    deleteSession: db.prepare<[string]>('DELETE FROM sessions WHERE id = ?'),
    listSessions: db.prepare<[number], SessionRow>(
      `SELECT s.id, s.info, s.expires_at, s.open_files,
         (SELECT count(*) FROM (SELECT chunk_id FROM write_holds WHERE session = s.id
                                UNION SELECT chunk_id FROM read_holds WHERE session = s.id)) AS held
       FROM sessions s WHERE s.expires_at > ? ORDER BY s.id`,
    ),
    // A write hold that outlives its session was never committed (commits delete theirs): garbage.
    queueWriteHolds: db.prepare<[number, string]>(
      `INSERT INTO garbage (chunk_id, chunk, queued_at) SELECT chunk_id, chunk, ? FROM write_holds WHERE session = ?
       ${ENQUEUE}`,
    ),
    dropWriteHolds: db.prepare<[string]>('DELETE FROM write_holds WHERE session = ?'),
    dropReadHolds: db.prepare<[string]>('DELETE FROM read_holds WHERE session = ?'),
    holdWrite: db.prepare<[string, string, string]>(
      `INSERT INTO write_holds (chunk_id, session, chunk) VALUES (?, ?, ?)
       ON CONFLICT (chunk_id) DO UPDATE SET session = excluded.session, chunk = excluded.chunk`,
    ),
    releaseWrite: db.prepare<[string, string]>('DELETE FROM write_holds WHERE chunk_id = ? AND session = ?'),
    holdRead: db.prepare<[string, string, string]>(
      'INSERT INTO read_holds (chunk_id, session, hold) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    releaseRead: db.prepare<[string, string]>('DELETE FROM read_holds WHERE session = ? AND hold = ?'),
    anyWriteHold: db.prepare<[], number>('SELECT EXISTS (SELECT 1 FROM write_holds)').pluck(),
    clearWriteHold: db.prepare<[string]>('DELETE FROM write_holds WHERE chunk_id = ?'),
    clearWriteHolds: db.prepare<[string]>(
      "DELETE FROM write_holds WHERE chunk_id IN (SELECT value ->> 'id' FROM json_each(?))",
    ),
    heldChunks: db
      .prepare<[number, number], string>(
        `SELECT w.chunk_id FROM write_holds w JOIN sessions s ON s.id = w.session WHERE s.expires_at > ?
         UNION SELECT h.chunk_id FROM read_holds h JOIN sessions s ON s.id = h.session WHERE s.expires_at > ?`,
      )
      .pluck(),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
