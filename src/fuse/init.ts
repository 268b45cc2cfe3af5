/**
 * INIT negotiation: the kernel offers a protocol version and capability
 * flags; we answer with the version we speak, the flags we want out of those
 * offered, and our limits. Pure, so that it is tested without a kernel.
 */
import type { ConnectionInfo } from './filesystem.js';
import { INIT_OUT_SIZE, InitFlag, KERNEL_VERSION, MAX_MINOR_VERSION, MIN_MINOR_VERSION } from './protocol.js';

export interface InitOptions {
  /** Largest WRITE (and READ) in bytes; a multiple of the page size, at most 1 MiB on most kernels. */
  maxWrite: number;
  /** Let the kernel buffer writes in its page cache and send them later (faster small writes, no O_APPEND atomicity). */
  writebackCache: boolean;
  /** Background requests (read-ahead, async direct I/O) the kernel may have in flight. */
  maxBackground: number;
}

export interface InitRequest {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export type InitOutcome =
  | { kind: 'reply'; body: Buffer; conn: ConnectionInfo }
  /** A newer major: answer with ours only, the kernel then sends INIT again. */
  | { kind: 'retry'; body: Buffer }
  | { kind: 'refuse'; reason: string };

const PAGE = 4096;

/** What we ask for when the kernel offers it. */
export const WANTED_FLAGS =
  InitFlag.ASYNC_READ |
  InitFlag.ATOMIC_O_TRUNC |
  InitFlag.EXPORT_SUPPORT |
  InitFlag.BIG_WRITES |
  InitFlag.AUTO_INVAL_DATA |
  InitFlag.DO_READDIRPLUS |
  InitFlag.READDIRPLUS_AUTO |
  InitFlag.ASYNC_DIO |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.MAX_PAGES;

export function decodeInitIn(buf: Buffer, at: number): InitRequest {
  return {
    major: buf.readUInt32LE(at),
    minor: buf.readUInt32LE(at + 4),
    maxReadahead: buf.readUInt32LE(at + 8),
    flags: buf.readUInt32LE(at + 12),
  };
}

export function negotiateInit(req: InitRequest, opts: InitOptions): InitOutcome {
  const body = Buffer.alloc(INIT_OUT_SIZE);
  body.writeUInt32LE(KERNEL_VERSION, 0);
  body.writeUInt32LE(MAX_MINOR_VERSION, 4);
  if (req.major > KERNEL_VERSION) return { kind: 'retry', body };
  if (req.major < KERNEL_VERSION || req.minor < MIN_MINOR_VERSION) {
    return {
      kind: 'refuse',
      reason: `kernel speaks FUSE ${req.major}.${req.minor}, we need ${KERNEL_VERSION}.${MIN_MINOR_VERSION} or later`,
    };
  }
  const minor = Math.min(req.minor, MAX_MINOR_VERSION);
  const wanted = WANTED_FLAGS | (opts.writebackCache ? InitFlag.WRITEBACK_CACHE : 0);
  const flags = (req.flags & wanted) >>> 0;
  const maxWrite = Math.max(PAGE, Math.floor(opts.maxWrite / PAGE) * PAGE);
  // Without MAX_PAGES the kernel caps requests at 32 pages whatever max_write says.
  const maxPages = flags & InitFlag.MAX_PAGES ? Math.ceil(maxWrite / PAGE) : 0;
  const maxReadahead = Math.min(req.maxReadahead, maxWrite);
  body.writeUInt32LE(minor, 4);
  body.writeUInt32LE(maxReadahead, 8);
  body.writeUInt32LE(flags, 12);
  body.writeUInt16LE(opts.maxBackground, 16);
  body.writeUInt16LE(Math.floor((opts.maxBackground * 3) / 4), 18);
  body.writeUInt32LE(maxWrite, 20);
  body.writeUInt32LE(1, 24); // time_gran: nanosecond timestamps
  body.writeUInt16LE(maxPages, 28);
  return {
    kind: 'reply',
    body,
    conn: { kernelMinor: req.minor, minor, offered: req.flags, flags, maxWrite, maxReadahead },
  };
}
