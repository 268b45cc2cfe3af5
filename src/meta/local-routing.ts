import Database from 'better-sqlite3';
import type { LocalWriter } from './local-writer.js';

/**
 * Where a local store's writes run, decided call by call on the caller's
 * thread (the one answering FUSE calls):
 *
 * - here, on the caller's connection, when nothing waits in the writer thread,
 *   the write lock is free at this instant, and the write is short: the common
 *   case, with no thread hand-off;
 * - in the writer thread (local-writer.ts) otherwise: when another process or
 *   the writer holds the lock (BEGIN IMMEDIATE is tried here without waiting),
 *   when the write says it runs long (runsLong: big chunk lists, directory
 *   renames, garbage batches), or when earlier writes are still queued there,
 *   so writes keep the order they were made in.
 *
 * Why not every write in the writer thread: measured on this 2-core machine
 * under load, a hand-off to another thread and back cost more than the commit
 * itself, and cp -r of 1,000 small files took 3.8-6.0 s instead of 2.3 s.
 * Routed this way, a file created through the Vfs costs the CPU it did before
 * (252-337 µs against 304-332), and getattr is unchanged (13-17 µs).
 *
 * A write tried here that must go is abandoned before it changed anything (its
 * transaction never began, or rolls back) and sent whole. So a routed method
 * must run at most one transaction, before its first await: the rules
 * enforced below, loudly, so a method that breaks them fails in its first test.
 */
export class WriteRouting {
  /** Inside the synchronous part of a routed method running on this thread. */
  private trying = false;
  private sent = false;
  private wrote = false;

  constructor(
    private readonly writer: LocalWriter,
    private readonly file: string,
    /** Run before and after a transaction tried here: SQLite's busy timeout to 0 and back. */
    private readonly noWait: () => void,
    private readonly wait: () => void,
  ) {}

  /** Calls the store's method `name` (implemented by `method`) here if it can, or in the writer thread. */
  call(
    store: object,
    name: string,
    method: (...args: unknown[]) => Promise<unknown>,
    args: unknown[],
  ): Promise<unknown> {
    if (this.writer.pending > 0) return this.writer.call(name, args);
    this.trying = true;
    this.sent = false;
    this.wrote = false;
    let result: Promise<unknown>;
    try {
      result = method.apply(store, args);
    } finally {
      this.trying = false;
    }
    if (this.sent) {
      result.catch(() => undefined); // rejected with SENT, which is not the caller's business
      return this.writer.call(name, args);
    }
    return result;
  }

  /** Runs the routed method's one transaction on this thread's connection, or sends the method away if the lock is taken. */
  transact<T>(run: () => T): T {
    if (!this.trying) {
      throw new Error(
        `a write to ${this.file} ran outside a routed call (listed in WRITES in local.ts, one transaction before any await)`,
      );
    }
    if (this.wrote) throw new Error(`a routed write to ${this.file} ran a second transaction`);
    this.noWait();
    try {
      const result = run();
      this.wrote = true;
      return result;
    } catch (err) {
      if (err instanceof Database.SqliteError && err.code.startsWith('SQLITE_BUSY')) this.send();
      throw err;
    } finally {
      this.wait();
    }
  }

  /** Called by a write about to do work that grows with its input: here, it goes to the writer thread instead. */
  runsLong(): void {
    if (this.trying) this.send();
  }

  private send(): never {
    this.sent = true;
    throw SENT;
  }
}

/** Thrown through a write tried here that must go to the writer thread; caught by call(). One instance: no stack taken. */
export const SENT = new Error('sent to the writer thread');
