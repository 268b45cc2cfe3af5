import { InvalidError } from './errors.js';

/**
 * Fixed-size chunk buffers, recycled so that a steady write stream does not
 * allocate (and later collect) a megabyte per chunk.
 *
 * Up to `sharedCapacity` of them are shared memory (SharedArrayBuffer):
 * worker threads hash, encrypt and write those in place instead of receiving
 * copies. Shared buffers are created on demand and never dropped, because
 * one that has crossed to another thread is only freed once both threads'
 * collectors have run, which a thread that allocates little may not do for
 * a long time. Beyond the capacity (a burst: many files written at random
 * offsets at once), take() hands out ordinary buffers, which the data path
 * handles on the calling thread; those are left to the garbage collector
 * when given back.
 */
export class BufferPool {
  readonly bufferSize: number;
  readonly sharedCapacity: number;
  private readonly idle: Buffer[] = [];
  private created = 0;

  constructor(bufferSize: number, sharedCapacity: number) {
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new InvalidError(`buffer size must be a positive integer, got ${bufferSize}`);
    }
    if (!Number.isInteger(sharedCapacity) || sharedCapacity < 0) {
      throw new InvalidError(`pool capacity must be a non-negative integer, got ${sharedCapacity}`);
    }
    this.bufferSize = bufferSize;
    this.sharedCapacity = sharedCapacity;
  }

  /** Exactly bufferSize bytes with arbitrary content; each owns its memory outright. */
  take(): Buffer {
    const idle = this.idle.pop();
    if (idle) return idle;
    if (this.created < this.sharedCapacity) {
      this.created++;
      return Buffer.from(new SharedArrayBuffer(this.bufferSize));
    }
    return Buffer.allocUnsafeSlow(this.bufferSize);
  }

  /**
   * Hands a buffer back; the caller must not touch it afterwards. A shorter
   * view that starts its own bufferSize-byte allocation (the last, partial
   * chunk of a stream) recycles that whole allocation. Ordinary buffers, and
   * anything of the wrong size or already pooled, are ignored.
   */
  give(buf: Buffer): void {
    const memory = buf.buffer;
    if (!(memory instanceof SharedArrayBuffer)) return;
    if (buf.byteOffset !== 0 || memory.byteLength !== this.bufferSize) return;
    // A double give would hand one buffer to two writers; the pool is small, so checking is cheap.
    for (const pooled of this.idle) if (pooled.buffer === memory) return;
    this.idle.push(buf.length === this.bufferSize ? buf : Buffer.from(memory, 0, this.bufferSize));
  }

  /** Shared buffers waiting to be taken again. */
  get pooled(): number {
    return this.idle.length;
  }

  /** Shared buffers this pool has made (at most sharedCapacity). */
  get shared(): number {
    return this.created;
  }
}

/**
 * How many shared buffers a pool of `bufferSize` keeps: enough for every
 * chunk in flight plus the chunks being filled, within a byte budget so that
 * buckets with 64 MiB chunks do not pin gigabytes.
 */
export function sharedBuffersFor(bufferSize: number, inFlight: number, budgetBytes = 128 * 1024 * 1024): number {
  return Math.max(4, Math.min(inFlight + 16, Math.floor(budgetBytes / bufferSize)));
}
