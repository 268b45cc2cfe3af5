/** An open file as the budget sees it: it holds unsealed buffers and can seal its oldest. */
export interface DirtyHolder {
  /** The budget clock of its least recently written buffer; undefined when it holds none. */
  oldestTouch(): number | undefined;
  /** Seals its least recently written buffer, queued behind whatever the file is doing. */
  evictOldest(): Promise<void>;
}

/**
 * The process-wide bound on unsealed write buffers, shared by every open
 * file of a mount. A write that takes the total past the limit does not
 * return until it is back under: the writer seals its own oldest buffers, or
 * asks the file holding the oldest buffer of all to seal it and waits. So 100
 * files written at scattered offsets hold at most the budget, not 100 times a
 * per-file limit.
 *
 * Deadlock-free by construction: a waiter either holds the oldest buffer
 * itself (and seals it, inside its own exclusive section) or waits for a
 * holder that is idle (its queued eviction runs) or is itself a waiter, which
 * then holds the oldest buffer and seals it.
 */
export class DirtyBudget {
  private used = 0;
  private clock = 0;
  private readonly holders = new Set<DirtyHolder>();
  private waiters: Array<() => void> = [];
  private readonly evicting = new Set<DirtyHolder>();

  constructor(readonly limit: number) {}

  /** Unsealed bytes held right now. */
  get bytes(): number {
    return this.used;
  }

  get over(): boolean {
    return this.used > this.limit;
  }

  /** A clock shared by every file, so "least recently written" is decided across files. */
  tick(): number {
    return ++this.clock;
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (this.used <= this.limit && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** A file closed or committed everything: it holds nothing any more. */
  forget(holder: DirtyHolder): void {
    this.holders.delete(holder);
  }

  /** Takes `bytes` for `self` if they fit now; the write path's usual case, without a wait. */
  tryReserve(self: DirtyHolder, bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    this.holders.add(self);
    return true;
  }

  /**
   * Takes `bytes` for `self` once they fit under the limit. `self` is the
   * calling file, inside its own exclusive section: `sealOwn` seals its oldest
   * buffer directly. The bytes are counted before this resolves, so writers
   * racing for the last room cannot all get it.
   */
  async reserve(self: DirtyHolder, bytes: number, sealOwn: () => Promise<void>): Promise<void> {
    for (;;) {
      if (this.tryReserve(self, bytes)) return;
      // Nobody holds a buffer yet (room reserved, buffers about to be filled): wait for them.
      const victim = this.oldestHolder();
      if (victim === self) {
        await sealOwn();
        continue;
      }
      if (victim && !this.evicting.has(victim)) {
        this.evicting.add(victim);
        void victim
          .evictOldest()
          .catch(() => undefined)
          .finally(() => this.evicting.delete(victim));
      }
      // Woken by the next give; re-checked after a while in case the victim had nothing left to give.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private oldestHolder(): DirtyHolder | undefined {
    let oldest: DirtyHolder | undefined;
    let oldestTouch = Number.POSITIVE_INFINITY;
    for (const holder of this.holders) {
      const touch = holder.oldestTouch();
      if (touch === undefined) continue;
      if (touch < oldestTouch) {
        oldest = holder;
        oldestTouch = touch;
      }
    }
    return oldest;
  }
}
