import { hasCode } from '../core/errors.js';
import type { ChunkRef } from '../core/types.js';
import type { Collector } from '../metrics/collector.js';
import type { BackendSet } from './backend-set.js';
import { RepairLedger, type RepairStore } from './repair-ledger.js';

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

/** Most pending repairs kept in memory; beyond it they wait in the metadata store (or for the scrubber). */
const MAX_PENDING = 10_000;
const CONCURRENCY = 2;
/** Attempts in one process; past them the repair waits in the store for the next process (or the scrubber). */
const MAX_ATTEMPTS = 8;
const FIRST_RETRY_MS = 500;
/** Tasks that may carry their chunk's bytes; the rest re-read them when they run. */
const KEEP_BYTES_BELOW = 16;
/** Chunks read from the store's queue at once. */
const LOAD_PAGE = 1_000;

/**
 * Rewrites replicas that should exist but do not: found missing or corrupt by
 * a read, or missed by a write (a straggler that failed after quorum, a
 * backend that was down). Tasks for a backend that is down wait until the
 * backend set reports it recovered.
 *
 * With a store (the metadata store's repair queue), every repair is also
 * recorded there until it is done, so that what this process could not
 * finish — it stopped, the backend stayed down, the attempts ran out — is
 * finished by the next process that takes the backlog on (`load`): a mount,
 * a server, `lilio gc` or `lilio scrub --repair`. Memory holds at most
 * MAX_PENDING tasks; the store holds one entry per chunk.
 */
export class RepairQueue {
  private readonly pending = new Map<string, RepairTask>();
  private readonly store: RepairStore | undefined;
  private readonly ledger: RepairLedger | undefined;
  private running = 0;
  private closed = false;
  /** Launch no new task (closing a process that took the persisted backlog on: the store keeps the rest). */
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  /** Where the next load continues in the store's queue (chunk id order). */
  private cursor: string | undefined;
  /** The store holds repairs that did not fit in memory, to load once the queue has room. */
  private moreInStore = false;
  /** Whether this process took the persisted backlog on (it then keeps loading it as room frees up). */
  private resumed = false;
  private loading: Promise<{ loaded: number; more: boolean }> | undefined;
  /** Given up in this process: attempts ran out, nothing left to copy from, or no room in memory. */
  dropped = 0;
  repaired = 0;

  constructor(
    private readonly backends: BackendSet,
    private readonly collector: Collector,
    /** Reads the verified stored bytes of a chunk from any good replica; NOT_FOUND when none is left. */
    private readonly readStored: (chunk: ChunkRef) => Promise<Buffer>,
    store?: RepairStore,
  ) {
    this.store = store;
    this.ledger = store && new RepairLedger(store);
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
    this.collector.recordUnderReplicated(1);
    this.ledger?.record(chunk, backend);
    if (this.pending.size >= MAX_PENDING) {
      // Recorded in the store (when there is one): loaded again once there is room.
      if (this.ledger) this.moreInStore = true;
      this.dropped++;
      return;
    }
    // Keep the bytes only for a repair that can run right away: a queue waiting on a down
    // backend must not pin chunk buffers (they are read again from a good replica later).
    const keep = stored && this.backends.isHealthy(backend) && this.pending.size < KEEP_BYTES_BELOW;
    this.pending.set(key, { chunk, backend, reason, stored: keep ? stored : undefined, attempts: 0, retryAt: 0 });
    this.collector.setRepairBacklog(this.pending.size);
    this.pump();
  }

  /**
   * Takes on repairs recorded in the store (by this or any other process)
   * that are not pending here, up to the in-memory bound, continuing where
   * the previous load stopped. `more`: the store holds more than fitted.
   * After the first call the queue keeps loading whenever it runs empty.
   */
  load(): Promise<{ loaded: number; more: boolean }> {
    this.resumed = true;
    this.loading ??= this.loadPages().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async loadPages(): Promise<{ loaded: number; more: boolean }> {
    let loaded = 0;
    while (this.store && !this.closed && this.pending.size < MAX_PENDING) {
      const page = await this.store.peekRepairs(this.cursor, LOAD_PAGE);
      for (const entry of page) {
        for (const backend of entry.backends) {
          const key = `${entry.chunk.id}@${backend}`;
          // A backend no longer configured: its entry waits for the config (or rebalance) to settle it.
          if (this.pending.has(key) || !this.backends.backend(backend)) continue;
          this.pending.set(key, { chunk: entry.chunk, backend, reason: 'queued', attempts: 0, retryAt: 0 });
          loaded++;
        }
      }
      if (page.length < LOAD_PAGE) {
        this.cursor = undefined;
        this.moreInStore = false;
        break;
      }
      this.cursor = page.at(-1)!.chunk.id;
      this.moreInStore = true;
    }
    this.collector.setRepairBacklog(this.pending.size);
    this.pump();
    return { loaded, more: this.moreInStore };
  }

  /** Writes what the store has not been told yet (the ledger batches it). */
  async flush(): Promise<void> {
    await this.ledger?.flush();
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

  /**
   * Before close: a process that took the persisted backlog on finishes only
   * the repairs running now (the store keeps the rest for the next one); any
   * other finishes what it found itself, as far as it can run now.
   */
  async settle(): Promise<void> {
    if (this.resumed && this.store) this.stopped = true;
    await this.loading?.catch(() => undefined);
    await this.whenIdle();
  }

  /** Stops, and writes what the store has not been told yet; rejects if the store cannot take it. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.pending.clear();
    this.wakeIdle();
    await this.ledger?.flush();
  }

  private runnable(): [string, RepairTask] | undefined {
    if (this.stopped) return undefined;
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
    if (this.running === 0 && this.runnable() === undefined) {
      // Room again: what the store holds beyond what fitted comes next.
      if (this.resumed && this.moreInStore && this.pending.size === 0 && !this.stopped && !this.loading) {
        void this.load().catch(() => {
          // The store cannot be read now: give up on it until the next explicit load.
          this.moreInStore = false;
          this.pump();
        });
        return;
      }
      this.wakeIdle();
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private async repair(task: RepairTask): Promise<void> {
    try {
      let stored = task.stored;
      try {
        stored ??= await this.readStored(task.chunk);
      } catch (err) {
        if (!hasCode(err, 'NOT_FOUND')) throw err;
        // No replica left to copy from: the chunk was deleted (an aborted write, garbage) or is lost.
        this.collector.recordReadRepair(task.backend, false);
        this.ledger?.settle(task.chunk, task.backend);
        this.dropped++;
        return;
      }
      await this.backends.put(task.backend, task.chunk.id, stored);
      this.repaired++;
      this.ledger?.settle(task.chunk, task.backend);
      this.collector.recordReadRepair(task.backend, true);
    } catch {
      this.collector.recordReadRepair(task.backend, false);
      // Retry with backoff (a down backend's tasks wait for its recovery); past the limit the
      // store keeps it for the next process, and the scrubber finds it in any case.
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
