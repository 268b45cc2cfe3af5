/**
 * The kernel's references to our inodes. Every entry we hand out (LOOKUP,
 * the creating calls, READDIRPLUS) is one reference; FORGET and BATCH_FORGET
 * give back any number of them. When an inode's count reaches zero the
 * kernel has dropped it and the filesystem may free it (if it is unlinked).
 */
import { ROOT_ID } from './protocol.js';

export class LookupCounts {
  private readonly counts = new Map<number, number>();

  add(ino: number): void {
    if (ino === ROOT_ID || ino === 0) return;
    this.counts.set(ino, (this.counts.get(ino) ?? 0) + 1);
  }

  /** Gives back n references; true when that was the last of them. */
  forget(ino: number, n: number): boolean {
    const have = this.counts.get(ino);
    if (have === undefined) return false;
    if (have > n) {
      this.counts.set(ino, have - n);
      return false;
    }
    this.counts.delete(ino);
    return true;
  }

  /** The kernel's reference count on ino (0 when it holds none). */
  count(ino: number): number {
    return this.counts.get(ino) ?? 0;
  }

  get size(): number {
    return this.counts.size;
  }
}
