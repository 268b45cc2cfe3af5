import type { ChunkRef } from '../core/types.js';
import type { Collector } from '../metrics/collector.js';
import type { BackendSet } from './backend-set.js';

interface RepairTask {
  chunk: ChunkRef;
  backend: string;
  reason: string;
  /** Verified stored bytes when the caller already has them (read repair). */
  stored?: Buffer;
  attempts: number;
  /** Not before this time (ms since epoch) after a failed attempt. */
  retryAt: number;
}

/** Most pending repairs kept in memory; beyond it, the scrubber finds the rest. */
const MAX_PENDING = 10_000;
const CONCURRENCY = 2;
/** Attempts before a repair is left to the scrubber. */
const MAX_ATTEMPTS = 8;
const FIRST_RETRY_MS = 500;
/** Tasks that may carry their chunk's bytes; the rest re-read them when they run. */
const KEEP_BYTES_BELOW = 16;

/**
 * Rewrites replicas that should exist but do not: found missing or corrupt by
 * a read, or missed by a write (a straggler that failed after quorum, a
 * backend that was down). Tasks for a backend that is down wait until the
 * backend set reports it recovered. In memory only: what a restart loses,
 * `lilio scrub --repair` finds again.
 */
export class RepairQueue {
  private readonly pending = new Map<string, RepairTask>();
  private running = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  dropped = 0;
  repaired = 0;

  constructor(
    private readonly backends: BackendSet,
    private readonly collector: Collector,
    /** Reads the verified stored bytes of a chunk from any good replica. */
    private readonly readStored: (chunk: ChunkRef) => Promise<Buffer>,
  ) {
    backends.onRecovery((name) => {
      // A backend that is back takes its waiting repairs at once, whatever their backoff.
      for (const task of this.pending.values()) if (task.backend === name) task.retryAt = 0;
      this.pump();
    });
  }

  get size(): number {
    return this.pending.size;
  }

  add(chunk: ChunkRef, backend: string, reason: string, stored?: Buffer): void {
    if (this.closed) return;
    const key = `${chunk.id}@${backend}`;
    if (this.pending.has(key)) return;
    if (this.pending.size >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.collector.recordUnderReplicated(1);
    // Keep the bytes only for a repair that can run right away: a queue waiting on a down
    // backend must not pin chunk buffers (they are read again from a good replica later).
    const keep = stored && this.backends.isHealthy(backend) && this.pending.size < KEEP_BYTES_BELOW;
    this.pending.set(key, { chunk, backend, reason, stored: keep ? stored : undefined, attempts: 0, retryAt: 0 });
    this.collector.setRepairBacklog(this.pending.size);
    this.pump();
  }

  /** Makes every waiting repair runnable now, whatever its backoff (operator action, tests). */
  retryNow(): void {
    for (const task of this.pending.values()) task.retryAt = 0;
    this.pump();
  }

  /** Resolves when nothing runnable is left (tasks for down backends may remain). */
  whenIdle(): Promise<void> {
    if (this.running === 0 && this.runnable() === undefined) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.pending.clear();
    this.wakeIdle();
  }

  private runnable(): [string, RepairTask] | undefined {
    const now = Date.now();
    let soonest = Number.POSITIVE_INFINITY;
    for (const entry of this.pending) {
      const task = entry[1];
      if (!this.backends.isHealthy(task.backend)) continue;
      if (task.retryAt <= now) return entry;
      soonest = Math.min(soonest, task.retryAt);
    }
    if (soonest !== Number.POSITIVE_INFINITY && !this.retryTimer && !this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, soonest - now);
      this.retryTimer.unref();
    }
    return undefined;
  }

  private pump(): void {
    while (!this.closed && this.running < CONCURRENCY) {
      const next = this.runnable();
      if (!next) break;
      const [key, task] = next;
      this.pending.delete(key);
      this.running++;
      void this.repair(task).finally(() => {
        this.running--;
        this.collector.setRepairBacklog(this.pending.size);
        this.pump();
        if (this.running === 0 && this.runnable() === undefined) this.wakeIdle();
      });
    }
    if (this.running === 0 && this.runnable() === undefined) this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private async repair(task: RepairTask): Promise<void> {
    try {
      const stored = task.stored ?? (await this.readStored(task.chunk));
      await this.backends.put(task.backend, task.chunk.id, stored);
      this.repaired++;
      this.collector.recordReadRepair(task.backend, true);
    } catch {
      this.collector.recordReadRepair(task.backend, false);
      // Retry with backoff (a down backend's tasks wait for its recovery); past the limit the scrubber owns it.
      const attempts = task.attempts + 1;
      if (attempts < MAX_ATTEMPTS && !this.closed) {
        const retryAt = Date.now() + FIRST_RETRY_MS * 2 ** (attempts - 1);
        this.pending.set(`${task.chunk.id}@${task.backend}`, { ...task, stored: undefined, attempts, retryAt });
      } else {
        this.dropped++;
      }
    }
  }
}
