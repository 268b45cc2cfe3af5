/**
 * A FUSE session: requests read from /dev/fuse, dispatched to a filesystem,
 * answered in whatever order they finish.
 *
 * Node has no way to poll a character device, so reads go through fs.read,
 * which blocks one libuv thread-pool thread per outstanding read. Several
 * reads are kept outstanding (`readers`, default 2) so that the kernel's
 * requests are picked up while the event loop handles earlier ones; each
 * blocks a pool thread for as long as the kernel is idle, so the pool
 * (UV_THREADPOOL_SIZE, 4 by default) must leave room for the filesystem's
 * own file I/O, crypto and zlib work.
 *
 * The session ends when the kernel answers ENODEV (the mount is gone,
 * whoever unmounted it): `closed` resolves and 'close' is emitted; nothing
 * throws.
 */
import { EventEmitter } from 'node:events';
import { closeSync, read } from 'node:fs';
import { Dispatcher } from './dispatch.js';
import { Errno } from './errno.js';
import type { ConnectionInfo, FuseFilesystem } from './filesystem.js';
import { decodeInitIn, negotiateInit } from './init.js';
import { LookupCounts } from './lookups.js';
import { notifyDelete, notifyInvalEntry, notifyInvalInode } from './notify.js';
import { IN_HEADER_SIZE, Opcode, opcodeName } from './protocol.js';
import { ReplyWriter } from './replies.js';
import { RequestState } from './request-state.js';
import { readU64 } from './wire.js';

export interface SessionOptions {
  /** Seconds the kernel caches names and attributes (default 1). */
  entryTimeout?: number;
  attrTimeout?: number;
  /** Seconds the kernel caches a name's absence (default 0: not cached). */
  negativeTimeout?: number;
  /** Reads kept outstanding on /dev/fuse (default 2; at most UV_THREADPOOL_SIZE - 1). */
  readers?: number;
  /** Largest WRITE/READ in bytes (default 1 MiB). */
  maxWrite?: number;
  writebackCache?: boolean;
  maxBackground?: number;
  /** WRITE requests whose data may be held by the filesystem at once before reading pauses (default 16). */
  maxPendingWrites?: number;
  log?: (line: string) => void;
}

const MiB = 1024 * 1024;

/**
 * libuv's pool size, fixed when the process starts. A read of /dev/fuse
 * holds a pool thread until the kernel has a request, so at least one thread
 * stays free: were all of them waiting there, a filesystem call that needs
 * the pool (fs.promises, crypto) could never run, and the request it serves
 * would never finish.
 */
function threadPoolSize(): number {
  return Number(process.env.UV_THREADPOOL_SIZE) || 4;
}

export class Session extends EventEmitter {
  private fdValue: number;
  private closedDone = false;
  readonly lookups = new LookupCounts();
  readonly closed: Promise<void>;
  conn: ConnectionInfo | undefined;
  private readonly fs: FuseFilesystem;
  private readonly reply: ReplyWriter;
  private readonly dispatcher: Dispatcher;
  private readonly opts: Required<Omit<SessionOptions, 'log'>> & { log: (line: string) => void };
  private readonly inflight = new Map<number, RequestState>();
  private readonly counts = new Float64Array(64);
  private readonly bufferSize: number;
  private readonly freeBuffers: Buffer[] = [];
  private buffers = 0;
  private readonly maxBuffers: number;
  private parkedReaders = 0;
  private activeReads = 0;
  private started = false;
  private ended = false;
  private resolveClosed!: () => void;

  constructor(fd: number, fs: FuseFilesystem, options: SessionOptions = {}) {
    super();
    this.fdValue = fd;
    this.fs = fs;
    this.opts = {
      entryTimeout: options.entryTimeout ?? 1,
      attrTimeout: options.attrTimeout ?? 1,
      negativeTimeout: options.negativeTimeout ?? 0,
      readers: Math.max(1, Math.min(options.readers ?? 2, threadPoolSize() - 1)),
      maxWrite: options.maxWrite ?? MiB,
      writebackCache: options.writebackCache ?? false,
      maxBackground: options.maxBackground ?? 64,
      maxPendingWrites: options.maxPendingWrites ?? 16,
      log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
    };
    // A request is the 40-byte header, a 40-byte write_in and up to max_write bytes; the kernel refuses smaller reads.
    this.bufferSize = this.opts.maxWrite + 4096;
    this.maxBuffers = this.opts.readers + this.opts.maxPendingWrites;
    this.reply = new ReplyWriter(fd);
    this.reply.entryTimeout = this.opts.entryTimeout;
    this.reply.attrTimeout = this.opts.attrTimeout;
    this.reply.onWriteError = (errno, unique) => this.opts.log(`fuse: reply to ${unique} refused: errno ${errno}`);
    this.dispatcher = new Dispatcher(
      fs,
      this.reply,
      this.lookups,
      { negativeTimeout: this.opts.negativeTimeout, log: this.opts.log },
      (buf) => this.releaseBuffer(buf),
      (req) => this.inflight.delete(req.unique),
    );
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** The /dev/fuse descriptor; -1 once the session closed it. */
  get fd(): number {
    return this.fdValue;
  }

  get isClosed(): boolean {
    return this.closedDone;
  }

  /** Starts reading; call once the fd is mounted (reading an unmounted /dev/fuse fails with EPERM). */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.opts.readers; i++) {
      const buf = this.takeBuffer();
      if (buf) this.readInto(buf);
    }
  }

  /** Requests answered per opcode since the session started. */
  requestCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    this.counts.forEach((n, op) => {
      if (n > 0) out[opcodeName(op)] = n;
    });
    return out;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  notifyInvalInode(ino: number, offset = 0, length = -1): Promise<boolean> {
    return notifyInvalInode(this.fd, ino, offset, length);
  }

  notifyInvalEntry(parent: number, name: string): Promise<boolean> {
    return notifyInvalEntry(this.fd, parent, name);
  }

  notifyDelete(parent: number, child: number, name: string): Promise<boolean> {
    return notifyDelete(this.fd, parent, child, name);
  }

  private takeBuffer(): Buffer | undefined {
    const free = this.freeBuffers.pop();
    if (free) return free;
    if (this.buffers >= this.maxBuffers) return undefined;
    this.buffers++;
    return Buffer.allocUnsafeSlow(this.bufferSize);
  }

  private releaseBuffer(buf: Buffer): void {
    if (this.parkedReaders > 0 && !this.ended) {
      this.parkedReaders--;
      this.readInto(buf);
    } else this.freeBuffers.push(buf);
  }

  private readInto(buf: Buffer): void {
    this.activeReads++;
    read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.activeReads--;
      this.onRead(err, n, buf);
    });
  }

  private onRead(err: NodeJS.ErrnoException | null, n: number, buf: Buffer): void {
    if (this.ended) {
      this.maybeClose();
      return;
    }
    if (err) {
      const errno = -(err.errno ?? 0);
      // ENOENT: a request was interrupted before we read it; EINTR/EAGAIN: try again.
      if (errno === Errno.ENOENT || errno === Errno.EINTR || errno === Errno.EAGAIN) this.readInto(buf);
      else {
        // ENODEV: unmounted; ECONNABORTED: the connection was aborted (fusectl). Both end it cleanly.
        if (errno !== Errno.ENODEV && errno !== Errno.ECONNABORTED) {
          this.opts.log(`fuse: reading /dev/fuse failed: ${err.message}`);
        }
        this.end();
      }
      return;
    }
    let keeps = false;
    if (n >= IN_HEADER_SIZE) keeps = this.handle(buf, n);
    if (this.ended) {
      this.maybeClose();
      return;
    }
    const next = keeps ? this.takeBuffer() : buf;
    if (next) this.readInto(next);
    else this.parkedReaders++;
  }

  /** Handles one request; true when `buf` stays with it (WRITE data). */
  private handle(buf: Buffer, n: number): boolean {
    const len = buf.readUInt32LE(0);
    const op = buf.readUInt32LE(4);
    const unique = readU64(buf, 8);
    const ino = readU64(buf, 16);
    const end = Math.min(len, n);
    if (op < this.counts.length) this.counts[op]!++;
    switch (op) {
      case Opcode.INIT:
        this.init(unique, buf);
        return false;
      case Opcode.INTERRUPT:
        this.interrupt(unique, readU64(buf, IN_HEADER_SIZE));
        return false;
      case Opcode.DESTROY:
        void this.destroy(unique);
        return false;
    }
    const req = new RequestState(unique, op, buf.readUInt32LE(24), buf.readUInt32LE(28), buf.readUInt32LE(32));
    this.inflight.set(unique, req);
    return this.dispatcher.dispatch(req, op, ino, buf, IN_HEADER_SIZE, end);
  }

  private init(unique: number, buf: Buffer): void {
    const outcome = negotiateInit(decodeInitIn(buf, IN_HEADER_SIZE), this.opts);
    if (outcome.kind === 'refuse') {
      this.opts.log(`fuse: ${outcome.reason}`);
      this.reply.error(unique, Errno.EPROTO);
      this.emit('initFailed', new Error(outcome.reason));
      return;
    }
    if (outcome.kind === 'retry') {
      this.reply.raw(unique, outcome.body);
      return;
    }
    this.conn = outcome.conn;
    const conn = outcome.conn;
    // A synchronous throw from init() becomes a rejection too.
    new Promise<void>((resolve) => resolve(this.fs.init?.(conn))).then(
      () => {
        this.reply.raw(unique, outcome.body);
        this.emit('init', conn);
      },
      (err) => {
        this.opts.log(`fuse: filesystem init failed: ${(err as Error)?.message ?? err}`);
        this.reply.error(unique, Errno.EIO);
        this.emit('initFailed', err);
      },
    );
  }

  private interrupt(unique: number, target: number): void {
    const req = this.inflight.get(target);
    if (req) {
      req.interrupted = true;
      return;
    }
    // The INTERRUPT can overtake its request when both are read at once: ask the kernel to send it again later.
    setTimeout(() => {
      const late = this.inflight.get(target);
      if (late) late.interrupted = true;
      else if (!this.ended) this.reply.error(unique, Errno.EAGAIN);
    }, 10).unref();
  }

  private async destroy(unique: number): Promise<void> {
    try {
      await this.fs.destroy?.();
    } catch (err) {
      this.opts.log(`fuse: filesystem destroy failed: ${(err as Error)?.message ?? err}`);
    }
    this.reply.empty(unique);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.maybeClose();
  }

  /** Closes the fd once no read is outstanding on it (closing under a blocked read could let the number be reused). */
  private maybeClose(): void {
    if (!this.ended || this.activeReads > 0 || this.closedDone) return;
    this.closedDone = true;
    try {
      closeSync(this.fdValue);
    } catch {
      // already closed
    }
    this.fdValue = -1;
    this.reply.fd = -1;
    this.emit('close');
    this.resolveClosed();
  }
}
