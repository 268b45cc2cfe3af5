import { UnavailableError } from '../core/errors.js';
import { WorkerPool } from '../threads/pool.js';
import type { Synchronous } from './local-db.js';

/** What the writer thread needs to open its own connection to the store's file. */
export interface WriterOptions {
  path: string;
  synchronous: Synchronous;
  busyTimeoutMs: number;
}

/**
 * The thread that owns a local store's second connection and runs the writes
 * that must not run on the caller's thread (local-writer-worker.ts; which
 * ones: local-routing.ts), so that the thread answering every FUSE call never
 * waits for SQLite's write lock or sits in a long transaction.
 *
 * A write held up by another process's transaction (a CLI command, `lilio
 * server`) waits there, up to the busy timeout, while reads go on at once on
 * the caller's connection; WAL never makes a reader wait for a writer.
 * Requests run in the order they were sent, one transaction at a time.
 *
 * The thread starts on the first write (a read-only CLI command starts none),
 * keeps the process alive only while a write is pending, survives a request
 * that throws (the transaction rolls back, the next request runs), and is
 * replaced by the next request if it dies.
 */
export class LocalWriter {
  private readonly pool: WorkerPool;
  private started = false;
  private closed = false;
  /** Requests sent and not yet answered. */
  pending = 0;

  constructor(
    private readonly file: string,
    options: WriterOptions,
  ) {
    this.pool = new WorkerPool(import.meta.url, 'local-writer-worker', 1, options);
  }

  /** Runs the store's method `method` with `args` in the writer thread; resolves with what it returned. */
  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new UnavailableError(`metadata database ${this.file} is closed`));
    this.started = true;
    this.pending++;
    const answer = this.pool.run(method, { args });
    const done = () => {
      this.pending--;
    };
    answer.then(done, done);
    return answer;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.started) {
      // Queued behind every write already sent, which all finish (or fail) first: a commit whose
      // answer was on its way is never cut off. Then the thread closes its connection itself.
      await this.pool.run('close', {}).catch(() => undefined);
    }
    await this.pool.close();
  }
}
