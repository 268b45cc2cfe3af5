import type Database from 'better-sqlite3';

/**
 * Multipart uploads in the embedded store (schema migration 3 -> 4,
 * local-db.ts): one row per upload, its record as JSON, indexed by key for
 * ListMultipartUploads and by touched_at for expiry; one row per part, its
 * chunk list in a column of its own (as objects have), so listing parts of a
 * big upload does not parse what it does not need twice.
 */
export const UPLOADS_SCHEMA = `
CREATE TABLE IF NOT EXISTS uploads (
  id TEXT PRIMARY KEY,
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  touched_at INTEGER NOT NULL,
  record TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, id);
CREATE INDEX IF NOT EXISTS uploads_by_age ON uploads (touched_at);

CREATE TABLE IF NOT EXISTS parts (
  upload TEXT NOT NULL,
  part INTEGER NOT NULL,
  summary TEXT NOT NULL,
  chunks TEXT NOT NULL,
  PRIMARY KEY (upload, part)
) STRICT;
`;

export interface PartRow {
  summary: string;
  chunks: string;
}

export function prepareUploadStatements(db: Database.Database) {
  return {
    insert: db.prepare<[string, string, string, number, string]>(
      'INSERT INTO uploads (id, bucket, key, touched_at, record) VALUES (?, ?, ?, ?, ?)',
    ),
    get: db.prepare<[string], string>('SELECT record FROM uploads WHERE id = ?').pluck(),
    touch: db.prepare<[number, string, string]>('UPDATE uploads SET touched_at = ?, record = ? WHERE id = ?'),
    remove: db.prepare<[string]>('DELETE FROM uploads WHERE id = ?'),
    // Uploads after (key, id), with keys in [from, to): the prefix's range (see local-sql.ts for the bounds).
    page: db
      .prepare<{ bucket: string; key: string; id: string; from: string; to: string | Buffer; limit: number }, string>(
        `SELECT record FROM uploads INDEXED BY uploads_by_key
         WHERE bucket = :bucket AND (key > :key OR (key = :key AND id > :id))
           AND key >= :from AND key < CAST(:to AS TEXT)
         ORDER BY key, id LIMIT :limit`,
      )
      .pluck(),
    stale: db
      .prepare<[number, number], string>('SELECT record FROM uploads WHERE touched_at < ? ORDER BY touched_at LIMIT ?')
      .pluck(),
    count: db.prepare<[], number>('SELECT count(*) FROM uploads').pluck(),

    getPartChunks: db
      .prepare<[string, number], string>('SELECT chunks FROM parts WHERE upload = ? AND part = ?')
      .pluck(),
    putPart: db.prepare<[string, number, string, string]>(
      `INSERT INTO parts (upload, part, summary, chunks) VALUES (?, ?, ?, ?)
       ON CONFLICT (upload, part) DO UPDATE SET summary = excluded.summary, chunks = excluded.chunks`,
    ),
    partsFrom: db.prepare<[string, number, number], PartRow>(
      'SELECT summary, chunks FROM parts WHERE upload = ? AND part > ? ORDER BY part LIMIT ?',
    ),
    allChunks: db.prepare<[string], string>('SELECT chunks FROM parts WHERE upload = ?').pluck(),
    removeParts: db.prepare<[string]>('DELETE FROM parts WHERE upload = ?'),
  };
}

export type UploadStatements = ReturnType<typeof prepareUploadStatements>;
