import type Database from 'better-sqlite3';

/**
 * The repair queue of the embedded store: one row per chunk, its entry as
 * JSON (RepairEntry). Its own table and statements, added by schema
 * migration 1 -> 2 (local-db.ts), so an existing database gains it on open.
 */
export const REPAIRS_SCHEMA = `
CREATE TABLE IF NOT EXISTS repairs (
  chunk_id TEXT PRIMARY KEY,
  entry TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`;

export function prepareRepairStatements(db: Database.Database) {
  return {
    get: db.prepare<[string], string>('SELECT entry FROM repairs WHERE chunk_id = ?').pluck(),
    put: db.prepare<[string, string]>(
      'INSERT INTO repairs (chunk_id, entry) VALUES (?, ?) ON CONFLICT (chunk_id) DO UPDATE SET entry = excluded.entry',
    ),
    remove: db.prepare<[string]>('DELETE FROM repairs WHERE chunk_id = ?'),
    peek: db
      .prepare<[string, number], string>('SELECT entry FROM repairs WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?')
      .pluck(),
    count: db.prepare<[], number>('SELECT count(*) FROM repairs').pluck(),
  };
}

export type RepairStatements = ReturnType<typeof prepareRepairStatements>;
