import type { ChunkRef } from '../core/types.js';
import type { MetadataStore, RepairDone, RepairEntry } from '../meta/store.js';

/** What the repair queue needs of the metadata store. */
export type RepairStore = Pick<MetadataStore, 'queueRepairs' | 'clearRepairs' | 'peekRepairs'>;

interface Change {
  chunk: ChunkRef;
  backend: string;
  /** true: the replica needs repair; false: it was dealt with. */
  queue: boolean;
  at: number;
}

/**
 * Changes collect this long before one write takes them all: a replica that
 * is repaired within it (a read repair on a healthy backend takes
 * milliseconds) never costs a metadata write to queue, and a backend that
 * is down while chunks are written costs one write a second, not one per chunk.
 */
const FLUSH_DELAY_MS = 1_000;
/** After a failed write (the metadata store unreachable), this long before the next try. */
const RETRY_DELAY_MS = 5_000;
/** Changes held while the store cannot take them; past it, new repairs are left to the scrubber. */
const MAX_BUFFERED = 10_000;

/**
 * Writes the repair queue's changes to the metadata store, batched: the
 * replicas found missing or corrupt, and the ones repaired since. The last
 * change of a replica wins, so one queued and repaired within the same
 * batch is never written at all.
 */
export class RepairLedger {
  private buffer = new Map<string, Change>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** Repairs not persisted because the buffer was full. */
  dropped = 0;

  constructor(private readonly store: RepairStore) {}

  /** The replica needs repair. */
  record(chunk: ChunkRef, backend: string): void {
    this.change({ chunk, backend, queue: true, at: Date.now() });
  }

  /** The replica was repaired, or there is nothing left to repair it from. */
  settle(chunk: ChunkRef, backend: string): void {
    this.change({ chunk, backend, queue: false, at: Date.now() });
  }

  /** Writes everything buffered now (close). A store that fails keeps it buffered and rejects. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing?.catch(() => undefined);
    if (this.buffer.size > 0) await this.write();
  }

  private change(change: Change): void {
    const key = `${change.chunk.id}@${change.backend}`;
    if (!this.buffer.has(key) && this.buffer.size >= MAX_BUFFERED) {
      if (change.queue) this.dropped++;
      return;
    }
    this.buffer.set(key, change);
    this.schedule(FLUSH_DELAY_MS);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.flushing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write().catch(() => this.schedule(RETRY_DELAY_MS));
    }, delayMs);
    this.timer.unref();
  }

  private write(): Promise<void> {
    const batch = this.buffer;
    this.buffer = new Map();
    const queued: RepairEntry[] = [];
    const done: RepairDone[] = [];
    for (const c of batch.values()) {
      if (c.queue) queued.push({ chunk: c.chunk, backends: [c.backend], queuedAt: c.at });
      else done.push({ chunkId: c.chunk.id, backends: [c.backend] });
    }
    this.flushing = (async () => {
      try {
        // Both are idempotent, so after a failure the whole batch can simply be written again.
        await this.store.queueRepairs(queued);
        await this.store.clearRepairs(done);
      } catch (err) {
        for (const [key, change] of batch) if (!this.buffer.has(key)) this.buffer.set(key, change);
        throw err;
      } finally {
        this.flushing = undefined;
      }
      if (this.buffer.size > 0) this.schedule(FLUSH_DELAY_MS);
    })();
    return this.flushing;
  }
}
