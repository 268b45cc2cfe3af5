/**
 * The local backend's disk thread (see local-io.ts): whole chunk writes and
 * reads as plain synchronous system calls, one request at a time, so the
 * main thread pays one message per chunk instead of a promise per syscall.
 *
 * Direct I/O (O_DIRECT) by default: chunk bytes go between this thread's
 * aligned scratch buffer and the disk without passing through the page
 * cache. Lilio keeps its own cache of plaintext chunks, so the kernel's copy
 * would be a second one; and every page the cache takes is memory the kernel
 * must find, zero and later write back and reclaim, which for N replicas of
 * every chunk costs more than the disk transfer itself. A filesystem that
 * refuses O_DIRECT (tmpfs, some FUSE or network filesystems) gets ordinary
 * buffered I/O, and the answer says so.
 */
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { movable } from '../threads/movable.js';
import { type HandlerResult, serveRequests } from '../threads/protocol.js';

/** Direct I/O moves whole blocks at aligned addresses: 4 KiB covers every common device. */
const BLOCK = 4096;
const WASM_PAGE = 64 * 1024;
/** The largest stored chunk (64 MiB plus encryption overhead), rounded to whole blocks. */
const MAX_SCRATCH_PAGES = Math.ceil((64 * 1024 * 1024 + BLOCK) / WASM_PAGE);

interface PutArgs {
  /** The chunk's fan-out directory (created when missing) and its final and temporary paths. */
  dir: string;
  target: string;
  temp: string;
  data: Uint8Array;
  fsync: boolean;
  /** Try O_DIRECT first. */
  direct: boolean;
  fileMode: number;
  dirMode: number;
}

interface GetArgs {
  file: string;
  direct: boolean;
}

/** What every answer says besides its result: whether direct I/O was used (false: the filesystem refused it). */
interface DiskAnswer {
  direct: boolean;
}

const roundUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** The one part of the WebAssembly API used here (its types live in TypeScript's DOM library). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory };

/**
 * Page-aligned memory for direct I/O. JavaScript cannot ask for an aligned
 * address, but a WebAssembly memory starts on a page boundary; it grows to the
 * largest chunk seen and is reused for every request of this thread.
 */
let scratch: WasmMemory | undefined;

function scratchOf(bytes: number): Buffer {
  const pages = Math.ceil(bytes / WASM_PAGE);
  if (!scratch) scratch = new WebAssembly.Memory({ initial: pages, maximum: MAX_SCRATCH_PAGES });
  const have = scratch.buffer.byteLength / WASM_PAGE;
  if (have < pages) scratch.grow(pages - have);
  return Buffer.from(scratch.buffer, 0, bytes);
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** EINVAL from open with O_DIRECT: this filesystem does not do direct I/O. */
function refusesDirect(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'EINVAL';
}

function openTemp(args: PutArgs, flags: number): number {
  const { dir, temp, fsync, fileMode, dirMode } = args;
  try {
    // O_EXCL: a temp name that somehow exists is never silently shared.
    return openSync(temp, flags, fileMode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Only a missing fan-out directory costs a mkdir: the common case pays nothing for it.
  const created = mkdirSync(dir, { recursive: true, mode: dirMode });
  if (created !== undefined && fsync) {
    // New directory entries are durable only once their parents are synced too.
    for (let d = dirname(dir); ; d = dirname(d)) {
      syncPath(d);
      if (d === dirname(created) || d === dirname(d)) break;
    }
  }
  return openSync(temp, flags, fileMode);
}

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

/** Opens the temp file, directly if asked and possible; says which it got. */
function openForWrite(args: PutArgs): { fd: number; direct: boolean } {
  if (args.direct) {
    try {
      return { fd: openTemp(args, WRITE_FLAGS | constants.O_DIRECT), direct: true };
    } catch (err) {
      if (!refusesDirect(err)) throw err;
    }
  }
  return { fd: openTemp(args, WRITE_FLAGS), direct: false };
}

function writeAll(fd: number, data: Uint8Array, length: number): void {
  for (let done = 0; done < length; ) done += writeSync(fd, data, done, length - done, done);
}

function put(args: PutArgs): HandlerResult {
  const { target, temp, data, fsync, dir } = args;
  let fd: number | undefined;
  try {
    const opened = openForWrite(args);
    fd = opened.fd;
    if (opened.direct) {
      // Whole blocks from aligned memory, then cut to the chunk's real length.
      const padded = roundUp(data.byteLength);
      const aligned = scratchOf(padded);
      aligned.set(data);
      aligned.fill(0, data.byteLength, padded);
      writeAll(fd, aligned, padded);
      if (padded !== data.byteLength) ftruncateSync(fd, data.byteLength);
    } else {
      writeAll(fd, data, data.byteLength);
    }
    if (fsync) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, target);
    if (fsync) syncPath(dir);
    const answer: DiskAnswer = { direct: opened.direct };
    return { result: answer };
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {}
    throw err;
  }
}

function openForRead(file: string, direct: boolean): { fd: number; direct: boolean } {
  if (direct) {
    try {
      return { fd: openSync(file, constants.O_RDONLY | constants.O_DIRECT), direct: true };
    } catch (err) {
      if (!refusesDirect(err)) throw err;
    }
  }
  return { fd: openSync(file, constants.O_RDONLY), direct: false };
}

/** Reads into `into` (asking for all of it) until `size` bytes or the end of the file; returns how many. */
function readAll(fd: number, into: Uint8Array, size: number): number {
  let done = 0;
  while (done < size) {
    const n = readSync(fd, into, done, into.byteLength - done, done);
    if (n === 0) break;
    done += n;
  }
  return Math.min(done, size);
}

function get({ file, direct }: GetArgs): HandlerResult {
  const opened = openForRead(file, direct);
  const { fd } = opened;
  try {
    const size = fstatSync(fd).size;
    const data = Buffer.allocUnsafeSlow(size);
    let got: number;
    if (opened.direct) {
      // Whole blocks into aligned memory (the last one past the end of the file reads short).
      const aligned = scratchOf(roundUp(size));
      got = readAll(fd, aligned, size);
      aligned.copy(data, 0, 0, got);
    } else {
      got = readAll(fd, data, size);
    }
    // A file cut short under us (it never should be: chunks are renamed into place) reads as what is there.
    const { view, transfer } = movable(data.subarray(0, got));
    const answer: DiskAnswer & { data: Uint8Array } = { direct: opened.direct, data: view };
    return { result: answer, transfer: transfer ? [transfer] : [] };
  } finally {
    closeSync(fd);
  }
}

serveRequests({
  put: (args) => put(args as unknown as PutArgs),
  get: (args) => get(args as unknown as GetArgs),
});
