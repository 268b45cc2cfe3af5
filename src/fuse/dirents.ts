/**
 * A READDIR / READDIRPLUS reply being filled: fuse_dirent records (24 bytes +
 * name, padded to 8) or fuse_direntplus (a 128-byte fuse_entry_out before
 * each). The kernel gives the reply's size; an entry that does not fit is
 * refused and the kernel asks again from that entry's offset.
 */
import type { Entry } from './filesystem.js';
import { DIRENT_HEADER_SIZE, direntAlign, ENTRY_OUT_SIZE } from './protocol.js';
import { encodeEntry, writeU64 } from './wire.js';

/** DT_* from the S_IFMT bits of a mode. */
export function direntType(mode: number): number {
  return (mode >>> 12) & 0o17;
}

export class DirectoryListing {
  readonly plus: boolean;
  readonly buf: Buffer;
  private used = 0;
  /** Inodes whose entries went out in a READDIRPLUS reply: each is one lookup the kernel now holds. */
  readonly looked: number[] = [];
  private readonly entryTimeout: number;
  private readonly attrTimeout: number;

  constructor(size: number, plus: boolean, entryTimeout: number, attrTimeout: number) {
    this.buf = Buffer.allocUnsafe(size);
    this.plus = plus;
    this.entryTimeout = entryTimeout;
    this.attrTimeout = attrTimeout;
  }

  get length(): number {
    return this.used;
  }

  /**
   * Adds `name`, whose successor starts at `nextOffset` (any non-zero cookie
   * the filesystem understands). With READDIR only entry.ino and the type
   * bits of entry.attr.mode are sent. Answers false when the reply is full.
   */
  add(name: string, nextOffset: number, entry: Entry): boolean {
    const nameLen = Buffer.byteLength(name);
    const head = this.plus ? ENTRY_OUT_SIZE + DIRENT_HEADER_SIZE : DIRENT_HEADER_SIZE;
    const size = direntAlign(head + nameLen);
    if (this.used + size > this.buf.length) return false;
    let at = this.used;
    const buf = this.buf;
    if (this.plus) {
      // '.' and '..' never become kernel references (fuse_direntplus_link skips them): send no node id.
      const dot = name === '.' || name === '..';
      if (dot || entry.ino === 0) {
        buf.fill(0, at, at + ENTRY_OUT_SIZE);
      } else {
        encodeEntry(buf, at, entry, this.entryTimeout, this.attrTimeout);
        this.looked.push(entry.ino);
      }
      at += ENTRY_OUT_SIZE;
    }
    writeU64(buf, entry.ino === 0 ? entry.attr.ino : entry.ino, at);
    writeU64(buf, nextOffset, at + 8);
    buf.writeUInt32LE(nameLen, at + 16);
    buf.writeUInt32LE(direntType(entry.attr.mode), at + 20);
    buf.write(name, at + 24, nameLen, 'utf8');
    buf.fill(0, at + 24 + nameLen, this.used + size);
    this.used += size;
    return true;
  }
}
