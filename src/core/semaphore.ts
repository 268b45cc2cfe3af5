import { InvalidError } from './errors.js';

interface Waiter {
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Cleared when the waiter gave up; release() skips it. */
  active: boolean;
}

/**
 * Counting semaphore with FIFO hand-off: the bound on chunks in flight, the
 * backpressure that makes a writer wait instead of queueing memory. A released
 * permit goes straight to the oldest waiter, so a stream of new acquirers
 * cannot starve it.
 */
export class Semaphore {
  private permits: number;
  private readonly max: number;
  /** FIFO of waiters; `head` advances instead of shift() so dequeue is O(1). */
  private queue: (Waiter | undefined)[] = [];
  private head = 0;
  private waiters = 0;

  constructor(permits: number) {
    if (!Number.isInteger(permits) || permits < 1) {
      throw new InvalidError(`a semaphore needs a positive integer of permits, got ${permits}`);
    }
    this.permits = permits;
    this.max = permits;
  }

  /** Resolves once a permit is held. With a signal, an abort while waiting rejects with its reason and takes no permit. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined, active: true };
      if (signal) {
        waiter.onAbort = () => {
          waiter.active = false;
          this.waiters--;
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.queue.push(waiter);
      this.waiters++;
    });
  }

  /** Takes a permit only if one is free and nobody is already waiting (waiters keep their turn). */
  tryAcquire(): boolean {
    if (this.permits === 0 || this.waiters > 0) return false;
    this.permits--;
    return true;
  }

  release(): void {
    const next = this.dequeue();
    if (next) {
      next.resolve();
      return;
    }
    if (this.permits === this.max) throw new InvalidError('semaphore released more often than acquired');
    this.permits++;
  }

  get available(): number {
    return this.permits;
  }

  get waiting(): number {
    return this.waiters;
  }

  private dequeue(): Waiter | undefined {
    while (this.head < this.queue.length) {
      const waiter = this.queue[this.head];
      this.queue[this.head++] = undefined;
      if (!waiter?.active) continue;
      waiter.active = false;
      this.waiters--;
      if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      this.compact();
      return waiter;
    }
    this.compact();
    return undefined;
  }

  /** Drops the consumed prefix once it dominates, so the array does not grow forever. */
  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
