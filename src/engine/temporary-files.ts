import { describeError } from '../core/errors.js';
import type { BackendSet } from './backend-set.js';

export interface TemporaryFileSweep {
  /** Temporary files removed, over every backend swept. */
  removed: number;
  /** Backends that keep temporary files but were not swept, and why (down, or the sweep failed). */
  skipped: Array<{ backend: string; reason: string }>;
}

/**
 * Removes the temporary files that writes cut short (a killed mount, server
 * or node) left on local backends and storage nodes, once older than
 * `olderThanMs`: nothing else ever deletes them, since they are not chunks.
 * Younger ones may belong to a write in progress. Backends whose chunks are
 * written in one atomic request (S3, Drive, memory) have none to sweep.
 */
export async function sweepTemporaryFiles(backends: BackendSet, olderThanMs: number): Promise<TemporaryFileSweep> {
  const sweep: TemporaryFileSweep = { removed: 0, skipped: [] };
  await Promise.all(
    backends.names.map(async (name) => {
      const backend = backends.backend(name);
      if (!backend?.sweepTemporaryFiles) return;
      if (!backends.isHealthy(name)) {
        sweep.skipped.push({ backend: name, reason: 'backend is down' });
        return;
      }
      try {
        const removed = await backend.sweepTemporaryFiles(olderThanMs);
        sweep.removed += removed;
      } catch (err) {
        sweep.skipped.push({ backend: name, reason: describeError(err) });
      }
    }),
  );
  return sweep;
}
