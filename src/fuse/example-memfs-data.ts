/**
 * The bytes of one example-memfs file: appended pieces, so that a sequential
 * write stores each WRITE's bytes once and a read answers with slices of
 * them (no copy: the session writes them out with writev).
 */

const SLAB = 64 * 1024 * 1024;

/**
 * Pre-touched memory for written bytes. On a VM whose fresh pages are slow
 * to fault in, storing writes in new Buffers measures the hypervisor; a
 * benchmark passes preallocMiB to measure FUSE alone (as scripts/bench/memfs.ts).
 */
export class Arena {
  private readonly slabs: Buffer[] = [];
  private used = SLAB;

  constructor(preallocMiB = 0) {
    for (let left = preallocMiB * 1024 * 1024; left > 0; left -= SLAB) {
      this.slabs.push(Buffer.allocUnsafeSlow(SLAB).fill(0));
    }
    if (this.slabs.length > 0) this.used = 0;
  }

  copy(src: Buffer): Buffer {
    const len = src.length;
    let out: Buffer | undefined;
    if (this.slabs.length > 0 && len <= SLAB) {
      if (this.used + len > SLAB) {
        this.slabs.shift();
        this.used = 0;
      }
      const slab = this.slabs[0];
      if (slab) {
        out = slab.subarray(this.used, this.used + len);
        this.used += len;
      }
    }
    out ??= Buffer.allocUnsafe(len);
    src.copy(out);
    return out;
  }
}

export class FileData {
  private pieces: Buffer[] = [];
  private starts: number[] = [];
  size = 0;

  /** Index of the piece holding offset (offset < size). */
  private pieceAt(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** One contiguous buffer: only for the rare write into the middle or a shrinking truncate. */
  private flatten(): Buffer {
    const flat = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.size);
    this.pieces = [flat];
    this.starts = [0];
    return flat;
  }

  write(arena: Arena, offset: number, data: Buffer): void {
    if (offset === this.size) {
      this.starts.push(offset);
      this.pieces.push(arena.copy(data));
      this.size += data.length;
      return;
    }
    if (offset + data.length > this.size) this.truncate(offset + data.length);
    data.copy(this.flatten(), offset);
  }

  truncate(size: number): void {
    if (size === this.size) return;
    if (size > this.size) {
      this.starts.push(this.size);
      this.pieces.push(Buffer.alloc(size - this.size));
    } else if (size === 0) {
      this.pieces = [];
      this.starts = [];
    } else {
      this.pieces = [Buffer.from(this.flatten().subarray(0, size))];
      this.starts = [0];
    }
    this.size = size;
  }

  /** Slices covering [offset, offset+length) clipped to the file. */
  read(offset: number, length: number): Buffer[] {
    const end = Math.min(this.size, offset + length);
    const out: Buffer[] = [];
    if (offset >= end) return out;
    let i = this.pieceAt(offset);
    let at = offset;
    while (at < end) {
      const piece = this.pieces[i]!;
      const from = at - this.starts[i]!;
      const n = Math.min(piece.length - from, end - at);
      out.push(piece.subarray(from, from + n));
      at += n;
      i++;
    }
    return out;
  }
}
