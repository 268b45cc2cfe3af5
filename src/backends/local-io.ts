import { WorkerPool } from '../threads/pool.js';

/**
 * The disk threads every local backend of the process shares (see
 * local-io-worker.ts). Four: chunk I/O blocks a thread for as long as the
 * disk takes, and the N replicas of a few chunks in flight are written at
 * once. Opened by each LocalBackend and closed with the last one.
 */
const THREADS = 4;

let shared: WorkerPool | undefined;
let users = 0;

export function acquireLocalIo(): WorkerPool {
  users++;
  shared ??= new WorkerPool(import.meta.url, 'local-io-worker', THREADS);
  return shared;
}

export async function releaseLocalIo(): Promise<void> {
  users--;
  if (users > 0 || !shared) return;
  const pool = shared;
  shared = undefined;
  await pool.close();
}
