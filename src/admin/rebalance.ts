import { ConflictError, describeError } from '../core/errors.js';
import type { ChunkRef, ObjectDraft, ObjectRecord } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';
import { type AdminMetrics, NoopAdminMetrics } from '../metrics/admin.js';
import { everyObject, forEachLimited } from './walk.js';

export interface RebalanceOptions {
  bucket?: string;
  /** Report what would move, move nothing. */
  dryRun?: boolean;
  /** Chunks of one object copied at once. */
  concurrency?: number;
  metrics?: AdminMetrics;
}

export interface RebalanceReport {
  dryRun: boolean;
  objects: number;
  /** Chunks looked at. */
  chunks: number;
  /** Chunks whose ring placement differs from their recorded replica set: moved (or, dry run, to move). */
  moved: number;
  /** Replicas written to backends that joined a chunk's placement. */
  replicasCopied: number;
  /** Old replicas put on the garbage queue: deleted by `lilio gc` once the grace period has passed. */
  replicasQueued: number;
  /** Old replicas on backends no longer configured: nothing here can delete them. */
  replicasLeft: number;
  objectsUpdated: number;
  failures: Array<{ bucket: string; key: string; error: string }>;
}

/** Commit attempts per object when other writers keep committing it. */
const MAX_ATTEMPTS = 3;

/**
 * Moves chunks to the placement the current ring gives them, after backends
 * were added to or removed from the config. A chunk moves only when its ring
 * placement differs from its recorded replica set, so adding one backend to
 * many moves about 1/N of the data, not all of it.
 *
 * Per object, and never losing the last good replica:
 *   1. copy each moving chunk, read from a verified replica, to the backends
 *      that joined its placement (and refill any kept replica found missing);
 *   2. commit the object's new replica sets with compare-and-set on its
 *      version — a writer that committed meanwhile wins, and the object is
 *      planned again from its new record;
 *   3. only then retire the old replicas, through the garbage queue: readers
 *      that opened the previous version (which names them) keep working for
 *      the grace period, and a commit that still names them takes them back
 *      off the queue.
 */
export async function rebalance(lilio: Lilio, options: RebalanceOptions = {}): Promise<RebalanceReport> {
  const metrics = options.metrics ?? new NoopAdminMetrics();
  const report: RebalanceReport = {
    dryRun: options.dryRun ?? false,
    objects: 0,
    chunks: 0,
    moved: 0,
    replicasCopied: 0,
    replicasQueued: 0,
    replicasLeft: 0,
    objectsUpdated: 0,
    failures: [],
  };
  for await (const listed of everyObject(lilio, options.bucket)) {
    report.objects++;
    report.chunks += listed.chunks.length;
    if (listed.chunks.length === 0) continue;
    try {
      await rebalanceObject(lilio, listed, options, report, metrics);
    } catch (err) {
      report.failures.push({ bucket: listed.bucket, key: listed.key, error: describeError(err) });
    }
  }
  return report;
}

interface Move {
  chunk: ChunkRef;
  target: string[];
  joining: string[];
  leaving: string[];
}

function planMoves(lilio: Lilio, record: ObjectRecord): Move[] {
  const n = lilio.config.quorum.n;
  const moves: Move[] = [];
  for (const chunk of record.chunks) {
    const target = lilio.ring.place(chunk.id, n);
    const joining = target.filter((name) => !chunk.replicas.includes(name));
    const leaving = chunk.replicas.filter((name) => !target.includes(name));
    if (joining.length > 0 || leaving.length > 0) moves.push({ chunk, target, joining, leaving });
  }
  return moves;
}

/** Writes a verified copy to every backend of the chunk's new placement that lacks one. */
async function copyChunk(lilio: Lilio, move: Move, copied: Set<string>, report: RebalanceReport): Promise<void> {
  const stored = await lilio.chunks.readStored(move.chunk);
  for (const name of move.target) {
    const key = `${move.chunk.id}@${name}`;
    if (copied.has(key)) continue;
    const joining = move.joining.includes(name);
    // A kept replica is trusted if its size is right (scrub checks content); a missing one is refilled.
    if (!joining && (await lilio.backends.stat(name, move.chunk.id)) === move.chunk.storedSize) continue;
    await lilio.backends.put(name, move.chunk.id, stored);
    copied.add(key);
    if (joining) report.replicasCopied++;
  }
}

async function rebalanceObject(
  lilio: Lilio,
  listed: ObjectRecord,
  options: RebalanceOptions,
  report: RebalanceReport,
  metrics: AdminMetrics,
): Promise<void> {
  let record: ObjectRecord | undefined = listed;
  const copied = new Set<string>();
  for (let attempt = 1; record; attempt++) {
    const moves = planMoves(lilio, record);
    if (moves.length === 0) return;
    if (options.dryRun) {
      report.moved += moves.length;
      report.replicasCopied += moves.reduce((sum, m) => sum + m.joining.length, 0);
      return;
    }
    // 1. Copies first. A chunk whose copies did not all land keeps its old replica set.
    const ready: Move[] = [];
    await forEachLimited(moves, options.concurrency ?? 4, async (move) => {
      try {
        await copyChunk(lilio, move, copied, report);
        ready.push(move);
      } catch (err) {
        report.failures.push({
          bucket: listed.bucket,
          key: `${listed.key} (chunk ${move.chunk.id})`,
          error: describeError(err),
        });
      }
    });
    if (ready.length === 0) return;

    // 2. The commit: the record exactly as it was, but with the new replica sets.
    const placed = new Map(ready.map((m) => [m.chunk.id, m.target]));
    const { version, ...rest } = record;
    const draft: ObjectDraft = {
      ...rest,
      chunks: record.chunks.map((c) => (placed.has(c.id) ? { ...c, replicas: placed.get(c.id)! } : c)),
    };
    try {
      await lilio.commitRecord(draft, { version });
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= MAX_ATTEMPTS) throw err;
      // Someone committed this object meanwhile: plan again from what is there now. Copies
      // already made are reused; any the new version does not need become orphans for gc.
      record = await lilio.meta.getObject(record.bucket, record.key);
      continue;
    }
    report.objectsUpdated++;
    report.moved += ready.length;
    for (let i = 0; i < ready.length; i++) metrics.recordChunkMoved();

    // 3. Retire the old replicas.
    const configured = new Set(lilio.backends.names);
    const retired = [];
    for (const move of ready) {
      const deletable = move.leaving.filter((name) => configured.has(name));
      report.replicasLeft += move.leaving.length - deletable.length;
      if (deletable.length === 0) continue;
      retired.push({ chunk: { ...move.chunk, replicas: deletable }, queuedAt: Date.now() });
      report.replicasQueued += deletable.length;
    }
    if (retired.length > 0) await lilio.meta.queueGarbage(retired);
    return;
  }
}
