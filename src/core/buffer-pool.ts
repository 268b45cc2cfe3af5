import { InvalidError } from './errors.js';

/**
 * Fixed-size buffers recycled between chunks, so a steady write stream does
 * not allocate (and later collect) a megabyte per chunk. Bounded: beyond
 * `maxPooled` idle buffers, returned ones are left to the garbage collector.
 *
 * The buffers are shared memory (SharedArrayBuffer): chunk bytes are hashed,
 * encrypted and written to disk by worker threads, which read and write them
 * in place instead of receiving copies.
 */
export class BufferPool {
  readonly bufferSize: number;
  readonly maxPooled: number;
  private readonly idle: Buffer[] = [];

  constructor(bufferSize: number, maxPooled: number) {
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new InvalidError(`buffer size must be a positive integer, got ${bufferSize}`);
    }
    if (!Number.isInteger(maxPooled) || maxPooled < 0) {
      throw new InvalidError(`pool bound must be a non-negative integer, got ${maxPooled}`);
    }
    this.bufferSize = bufferSize;
    this.maxPooled = maxPooled;
  }

  /** Exactly bufferSize bytes of shared memory with arbitrary content; each owns its memory outright. */
  take(): Buffer {
    return this.idle.pop() ?? BufferPool.allocate(this.bufferSize);
  }

  /** A fresh shared-memory buffer of `size` bytes (zeroed), outside any pool. */
  static allocate(size: number): Buffer {
    return Buffer.from(new SharedArrayBuffer(size));
  }

  /**
   * Hands a buffer back; the caller must not touch it afterwards. A shorter
   * view that starts its own bufferSize-byte allocation (the last, partial
   * chunk of a stream) recycles that whole allocation. Anything else of the
   * wrong size, or a buffer already pooled, is ignored.
   */
  give(buf: Buffer): void {
    if (this.idle.length >= this.maxPooled) return;
    let whole = buf;
    if (buf.length !== this.bufferSize) {
      if (buf.byteOffset !== 0 || buf.buffer.byteLength !== this.bufferSize) return;
      whole = Buffer.from(buf.buffer, 0, this.bufferSize);
    }
    // A double give would hand one buffer to two writers; the pool is small, so checking is cheap.
    for (const pooled of this.idle) if (pooled.buffer === whole.buffer) return;
    this.idle.push(whole);
  }

  get pooled(): number {
    return this.idle.length;
  }
}
