/**
 * Writing answers to /dev/fuse. A reply is one write(2) of fuse_out_header +
 * body; the kernel matches it to its request by `unique`, so answers go out
 * in any order. Writes are synchronous on purpose: the kernel only copies
 * the bytes and wakes the caller, which costs less than a thread-pool hop,
 * and it lets every reply share one encode buffer (nothing can interleave
 * between encoding and writing). Notifications are the exception (notify.ts).
 */
import { writeSync, writevSync } from 'node:fs';
import { Errno } from './errno.js';
import type { Attr, CreateResult, Entry, OpenResult, StatfsResult } from './filesystem.js';
import {
  ATTR_OUT_SIZE,
  ENTRY_OUT_SIZE,
  OPEN_OUT_SIZE,
  OpenFlag,
  OUT_HEADER_SIZE,
  STATFS_OUT_SIZE,
  STATX_OUT_SIZE,
} from './protocol.js';
import { encodeAttrOut, encodeEntry, encodeStatxOut, writeU64 } from './wire.js';

/** What became of a reply: sent, dropped because the request was interrupted and aborted, or the device is gone. */
export type ReplyOutcome = 'sent' | 'aborted' | 'gone';

export function openFlags(r: OpenResult): number {
  return (
    (r.directIo ? OpenFlag.DIRECT_IO : 0) |
    (r.keepCache ? OpenFlag.KEEP_CACHE : 0) |
    (r.nonSeekable ? OpenFlag.NONSEEKABLE : 0) |
    (r.cacheDir ? OpenFlag.CACHE_DIR : 0)
  );
}

export class ReplyWriter {
  /** Set to -1 when the session closes the device, so that late replies cannot land in a reused descriptor. */
  fd: number;
  /** Header + the largest fixed-size body (statx_out, 288 bytes). */
  private readonly out = Buffer.alloc(OUT_HEADER_SIZE + 512);
  private readonly head = Buffer.alloc(OUT_HEADER_SIZE);
  entryTimeout = 1;
  attrTimeout = 1;
  /** Called with the errno of a failed write that is neither ENOENT nor ENODEV (a protocol bug of ours). */
  onWriteError: (errno: number, unique: number) => void = () => {};

  constructor(fd: number) {
    this.fd = fd;
  }

  private header(buf: Buffer, unique: number, len: number, error: number): void {
    buf.writeUInt32LE(len, 0);
    buf.writeInt32LE(error, 4);
    writeU64(buf, unique, 8);
  }

  private send(unique: number, bodyLen: number): ReplyOutcome {
    const len = OUT_HEADER_SIZE + bodyLen;
    this.header(this.out, unique, len, 0);
    return this.write(unique, () => writeSync(this.fd, this.out, 0, len));
  }

  private write(unique: number, op: () => void): ReplyOutcome {
    try {
      op();
      return 'sent';
    } catch (err) {
      const errno = -((err as { errno?: number }).errno ?? -Errno.EIO);
      // ENOENT: the request was interrupted and the kernel no longer waits for it.
      if (errno === Errno.ENOENT) return 'aborted';
      if (errno === Errno.ENODEV || errno === Errno.EBADF) return 'gone';
      this.onWriteError(errno, unique);
      // The kernel refused the reply as malformed (our bug): answer EIO rather than leave the caller waiting.
      if (errno === Errno.EINVAL) {
        try {
          this.header(this.out, unique, OUT_HEADER_SIZE, -Errno.EIO);
          writeSync(this.fd, this.out, 0, OUT_HEADER_SIZE);
        } catch {
          // nothing more we can do
        }
      }
      return 'aborted';
    }
  }

  error(unique: number, errno: number): ReplyOutcome {
    this.header(this.out, unique, OUT_HEADER_SIZE, -errno);
    return this.write(unique, () => writeSync(this.fd, this.out, 0, OUT_HEADER_SIZE));
  }

  empty(unique: number): ReplyOutcome {
    return this.send(unique, 0);
  }

  entry(unique: number, e: Entry): ReplyOutcome {
    encodeEntry(this.out, OUT_HEADER_SIZE, e, this.entryTimeout, this.attrTimeout);
    return this.send(unique, ENTRY_OUT_SIZE);
  }

  attr(unique: number, a: Attr): ReplyOutcome {
    encodeAttrOut(this.out, OUT_HEADER_SIZE, a, this.attrTimeout);
    return this.send(unique, ATTR_OUT_SIZE);
  }

  statx(unique: number, a: Attr): ReplyOutcome {
    encodeStatxOut(this.out, OUT_HEADER_SIZE, a, this.attrTimeout);
    return this.send(unique, STATX_OUT_SIZE);
  }

  private encodeOpen(at: number, r: OpenResult): void {
    writeU64(this.out, r.fh, at);
    this.out.writeUInt32LE(openFlags(r), at + 8);
    this.out.writeUInt32LE(0, at + 12);
  }

  open(unique: number, r: OpenResult): ReplyOutcome {
    this.encodeOpen(OUT_HEADER_SIZE, r);
    return this.send(unique, OPEN_OUT_SIZE);
  }

  create(unique: number, r: CreateResult): ReplyOutcome {
    encodeEntry(this.out, OUT_HEADER_SIZE, r, this.entryTimeout, this.attrTimeout);
    this.encodeOpen(OUT_HEADER_SIZE + ENTRY_OUT_SIZE, r);
    return this.send(unique, ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
  }

  /** fuse_write_out (WRITE, COPY_FILE_RANGE) and fuse_getxattr_out (size probes) share one layout. */
  size(unique: number, n: number): ReplyOutcome {
    this.out.writeUInt32LE(n, OUT_HEADER_SIZE);
    this.out.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
    return this.send(unique, 8);
  }

  offset(unique: number, offset: number): ReplyOutcome {
    writeU64(this.out, offset, OUT_HEADER_SIZE);
    return this.send(unique, 8);
  }

  statfs(unique: number, s: StatfsResult): ReplyOutcome {
    const b = this.out;
    const at = OUT_HEADER_SIZE;
    b.fill(0, at, at + STATFS_OUT_SIZE);
    writeU64(b, s.blocks, at);
    writeU64(b, s.bfree, at + 8);
    writeU64(b, s.bavail, at + 16);
    writeU64(b, s.files, at + 24);
    writeU64(b, s.ffree, at + 32);
    b.writeUInt32LE(s.bsize, at + 40);
    b.writeUInt32LE(s.namelen, at + 44);
    b.writeUInt32LE(s.frsize, at + 48);
    return this.send(unique, STATFS_OUT_SIZE);
  }

  /** A body of raw bytes (READ, READLINK, GETXATTR, LISTXATTR, READDIR): header and pieces in one writev. */
  data(unique: number, body: Buffer | readonly Buffer[]): ReplyOutcome {
    const pieces = Buffer.isBuffer(body) ? [body] : body;
    let len = 0;
    for (const p of pieces) len += p.length;
    this.header(this.head, unique, OUT_HEADER_SIZE + len, 0);
    if (pieces.length === 0) return this.write(unique, () => writeSync(this.fd, this.head, 0, OUT_HEADER_SIZE));
    return this.write(unique, () => writevSync(this.fd, [this.head, ...pieces]));
  }

  /** The INIT reply, encoded by the session (init.ts). */
  raw(unique: number, body: Buffer): ReplyOutcome {
    return this.data(unique, body);
  }
}
