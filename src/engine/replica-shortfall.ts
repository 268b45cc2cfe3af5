/** One replica a chunk's write left out. */
export interface MissedReplica {
  backend: string;
  reason: string;
}

/** Chunks whose missed replicas are remembered until a commit asks; past it the oldest are forgotten. */
const MAX_REMEMBERED = 10_000;

/**
 * Which chunks of a write ended with fewer replicas than placed (a backend
 * was down, or failed after quorum), so that the commit that makes them part
 * of a version can say so: the write succeeded, yet the data is one failure
 * closer to loss until repair copies it. The chunk store tells it when a
 * chunk's replica writes start and every replica it missed; a commit asks
 * about its fresh chunks, waiting only for those still being replicated.
 */
export class ReplicaShortfalls {
  private readonly replicating = new Map<string, Promise<unknown>>();
  private readonly missed = new Map<string, MissedReplica[]>();

  /** A chunk's replica writes started; `settled` resolves when all of them finished. */
  replicate(id: string, settled: Promise<unknown>): void {
    this.replicating.set(id, settled);
    void settled.finally(() => this.replicating.delete(id)).catch(() => undefined);
  }

  /** The chunk reached quorum but this replica was not written. */
  missedReplica(id: string, backend: string, reason: string): void {
    let list = this.missed.get(id);
    if (!list) {
      if (this.missed.size >= MAX_REMEMBERED) this.missed.delete(this.missed.keys().next().value!);
      list = [];
      this.missed.set(id, list);
    }
    list.push({ backend, reason });
  }

  /** The chunk was deleted (its write was abandoned): nothing to report. */
  forget(id: string): void {
    this.missed.delete(id);
  }

  /**
   * The chunks among `ids` that missed replicas, once their replica writes
   * have all finished; each is reported once.
   */
  async of(ids: readonly string[]): Promise<Map<string, MissedReplica[]>> {
    const waiting: Array<Promise<unknown>> = [];
    for (const id of ids) {
      const settled = this.replicating.get(id);
      if (settled) waiting.push(settled);
    }
    if (waiting.length > 0) await Promise.allSettled(waiting);
    const found = new Map<string, MissedReplica[]>();
    if (this.missed.size === 0) return found;
    for (const id of ids) {
      const list = this.missed.get(id);
      if (!list) continue;
      found.set(id, list);
      this.missed.delete(id);
    }
    return found;
  }
}

/** "local-3: backend is down; s3: timeout" — each backend once, with its first reason. */
export function describeMissed(missed: Map<string, MissedReplica[]>): string {
  const reasons = new Map<string, string>();
  for (const list of missed.values()) {
    for (const { backend, reason } of list) if (!reasons.has(backend)) reasons.set(backend, reason);
  }
  return [...reasons].map(([backend, reason]) => `${backend}: ${reason}`).join('; ');
}
