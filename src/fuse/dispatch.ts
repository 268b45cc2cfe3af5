/**
 * One request to one filesystem call: decode the body, call the method,
 * answer. Everything taken from the request buffer is read before the
 * method is called, so the buffer is free for the next read as soon as
 * dispatch returns, except WRITE, whose data stays in place until the
 * filesystem is done with it (dispatch answers true then, and the session
 * gets the buffer back through releaseBuffer).
 */
import { DirectoryListing } from './dirents.js';
import { Errno, errnoOf } from './errno.js';
import type { Attr, Entry, FuseFilesystem, SetattrChanges, Timespec } from './filesystem.js';
import type { LookupCounts } from './lookups.js';
import { FSYNC_FDATASYNC, GETATTR_FH, Opcode, SetattrValid as V, WRITE_IN_SIZE } from './protocol.js';
import type { ReplyOutcome, ReplyWriter } from './replies.js';
import type { RequestState } from './request-state.js';
import { readU64 } from './wire.js';

export interface DispatchOptions {
  /** Seconds the kernel may cache a name's absence (0: not at all). */
  negativeTimeout: number;
  /** Unexpected errors (not errno-carrying) are logged here and answered EIO. */
  log: (line: string) => void;
}

const DEFAULT_STATFS = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };

/** A NUL-terminated name starting at `at`. */
function cstring(buf: Buffer, at: number, end: number): string {
  const nul = buf.indexOf(0, at);
  return buf.toString('utf8', at, nul < 0 || nul > end ? end : nul);
}

function timespec(buf: Buffer, secAt: number, nsecAt: number): Timespec {
  return { sec: readU64(buf, secAt), nsec: buf.readUInt32LE(nsecAt) };
}

export function decodeSetattr(buf: Buffer, at: number): SetattrChanges {
  const valid = buf.readUInt32LE(at);
  const c: SetattrChanges = { valid };
  if (valid & V.FH) c.fh = readU64(buf, at + 8);
  if (valid & V.SIZE) c.size = readU64(buf, at + 16);
  if (valid & V.ATIME) c.atime = valid & V.ATIME_NOW ? 'now' : timespec(buf, at + 32, at + 56);
  if (valid & V.MTIME) c.mtime = valid & V.MTIME_NOW ? 'now' : timespec(buf, at + 40, at + 60);
  if (valid & V.CTIME) c.ctime = timespec(buf, at + 48, at + 64);
  if (valid & V.MODE) c.mode = buf.readUInt32LE(at + 68);
  if (valid & V.UID) c.uid = buf.readUInt32LE(at + 76);
  if (valid & V.GID) c.gid = buf.readUInt32LE(at + 80);
  if (valid & V.KILL_SUIDGID) c.killSuidgid = true;
  return c;
}

export class Dispatcher {
  constructor(
    private readonly fs: FuseFilesystem,
    private readonly reply: ReplyWriter,
    private readonly lookups: LookupCounts,
    private readonly opts: DispatchOptions,
    private readonly releaseBuffer: (buf: Buffer) => void,
    private readonly finish: (req: RequestState) => void,
  ) {}

  fail(req: RequestState, err: unknown): void {
    let errno = errnoOf(err);
    if (errno === undefined) {
      errno = Errno.EIO;
      this.opts.log(`fuse: request ${req.unique} failed: ${(err as Error)?.stack ?? String(err)}`);
    }
    this.reply.error(req.unique, errno);
    this.finish(req);
  }

  private done(req: RequestState, _outcome: ReplyOutcome): void {
    this.finish(req);
  }

  /** An answer given synchronously: the request keeps no buffer. */
  private answered(req: RequestState, _outcome: ReplyOutcome): false {
    this.finish(req);
    return false;
  }

  private forgetOne(ino: number, n: number): void {
    if (this.lookups.forget(ino, n)) this.fs.forget?.(ino);
  }

  private entry(req: RequestState, p: Promise<Entry>, negativeOk: boolean): void {
    p.then(
      (e) => {
        this.lookups.add(e.ino);
        // The kernel never saw the entry when its reply could not be delivered: take the reference back.
        if (this.reply.entry(req.unique, e) !== 'sent') this.forgetOne(e.ino, 1);
        this.finish(req);
      },
      (err) => {
        if (negativeOk && this.opts.negativeTimeout > 0 && errnoOf(err) === Errno.ENOENT) {
          const none = { ino: 0, attr: undefined as unknown as Attr, entryTimeout: this.opts.negativeTimeout };
          this.done(req, this.reply.entry(req.unique, none));
        } else this.fail(req, err);
      },
    );
  }

  private empty(req: RequestState, p: Promise<void>): void {
    p.then(
      () => this.done(req, this.reply.empty(req.unique)),
      (err) => this.fail(req, err),
    );
  }

  private attr(req: RequestState, p: Promise<Attr>, statx: boolean): void {
    p.then(
      (a) => this.done(req, statx ? this.reply.statx(req.unique, a) : this.reply.attr(req.unique, a)),
      (err) => this.fail(req, err),
    );
  }

  /** Answers a value fetched for GETXATTR/LISTXATTR: its size when asked size 0, ERANGE when it does not fit. */
  private sized(req: RequestState, p: Promise<Buffer>, size: number): void {
    p.then(
      (value) => {
        if (size === 0) this.done(req, this.reply.size(req.unique, value.length));
        else if (value.length > size) this.fail(req, { code: 'ERANGE' });
        else this.done(req, this.reply.data(req.unique, value));
      },
      (err) => this.fail(req, err),
    );
  }

  private enosys(req: RequestState): false {
    this.reply.error(req.unique, Errno.ENOSYS);
    this.finish(req);
    return false;
  }

  /** Answers true when the request keeps `buf` (see the file comment). */
  dispatch(req: RequestState, op: number, ino: number, buf: Buffer, at: number, end: number): boolean {
    try {
      return this.call(req, op, ino, buf, at, end);
    } catch (err) {
      this.fail(req, err);
      return false;
    }
  }

  private call(req: RequestState, op: number, ino: number, buf: Buffer, at: number, end: number): boolean {
    const fs = this.fs;
    const r = this.reply;
    const u = req.unique;
    switch (op) {
      case Opcode.LOOKUP:
        if (!fs.lookup) return this.enosys(req);
        this.entry(req, fs.lookup(req, ino, cstring(buf, at, end)), true);
        return false;
      case Opcode.FORGET:
        this.forgetOne(ino, readU64(buf, at));
        this.finish(req);
        return false;
      case Opcode.BATCH_FORGET: {
        const count = buf.readUInt32LE(at);
        for (let i = 0, p = at + 8; i < count && p + 16 <= end; i++, p += 16) {
          this.forgetOne(readU64(buf, p), readU64(buf, p + 8));
        }
        this.finish(req);
        return false;
      }
      case Opcode.GETATTR: {
        if (!fs.getattr) return this.enosys(req);
        const fh = buf.readUInt32LE(at) & GETATTR_FH ? readU64(buf, at + 8) : undefined;
        this.attr(req, fs.getattr(req, ino, fh), false);
        return false;
      }
      case Opcode.STATX: {
        if (!fs.getattr) return this.enosys(req);
        const fh = buf.readUInt32LE(at) & GETATTR_FH ? readU64(buf, at + 8) : undefined;
        this.attr(req, fs.getattr(req, ino, fh), true);
        return false;
      }
      case Opcode.SETATTR:
        if (!fs.setattr) return this.enosys(req);
        this.attr(req, fs.setattr(req, ino, decodeSetattr(buf, at)), false);
        return false;
      case Opcode.READLINK:
        if (!fs.readlink) return this.enosys(req);
        fs.readlink(req, ino).then(
          (target) => this.done(req, r.data(u, typeof target === 'string' ? Buffer.from(target) : target)),
          (err) => this.fail(req, err),
        );
        return false;
      case Opcode.SYMLINK: {
        if (!fs.symlink) return this.enosys(req);
        const name = cstring(buf, at, end);
        const target = cstring(buf, at + Buffer.byteLength(name) + 1, end);
        this.entry(req, fs.symlink(req, ino, name, target), false);
        return false;
      }
      case Opcode.MKNOD: {
        if (!fs.mknod) return this.enosys(req);
        const [mode, rdev, umask] = [buf.readUInt32LE(at), buf.readUInt32LE(at + 4), buf.readUInt32LE(at + 8)];
        this.entry(req, fs.mknod(req, ino, cstring(buf, at + 16, end), mode, rdev, umask), false);
        return false;
      }
      case Opcode.MKDIR: {
        if (!fs.mkdir) return this.enosys(req);
        const [mode, umask] = [buf.readUInt32LE(at), buf.readUInt32LE(at + 4)];
        this.entry(req, fs.mkdir(req, ino, cstring(buf, at + 8, end), mode, umask), false);
        return false;
      }
      case Opcode.UNLINK:
        if (!fs.unlink) return this.enosys(req);
        this.empty(req, fs.unlink(req, ino, cstring(buf, at, end)));
        return false;
      case Opcode.RMDIR:
        if (!fs.rmdir) return this.enosys(req);
        this.empty(req, fs.rmdir(req, ino, cstring(buf, at, end)));
        return false;
      case Opcode.RENAME:
      case Opcode.RENAME2: {
        if (!fs.rename) return this.enosys(req);
        const newParent = readU64(buf, at);
        const flags = op === Opcode.RENAME2 ? buf.readUInt32LE(at + 8) : 0;
        const names = at + (op === Opcode.RENAME2 ? 16 : 8);
        const name = cstring(buf, names, end);
        const newName = cstring(buf, names + Buffer.byteLength(name) + 1, end);
        this.empty(req, fs.rename(req, ino, name, newParent, newName, flags));
        return false;
      }
      case Opcode.LINK:
        if (!fs.link) return this.enosys(req);
        this.entry(req, fs.link(req, readU64(buf, at), ino, cstring(buf, at + 8, end)), false);
        return false;
      case Opcode.OPEN:
      case Opcode.OPENDIR: {
        const open = op === Opcode.OPEN ? fs.open : fs.opendir;
        // Like libfuse: a filesystem without open()/opendir() is stateless and needs no handle.
        if (!open) return this.answered(req, r.open(u, { fh: 0 }));
        open.call(fs, req, ino, buf.readUInt32LE(at)).then(
          (res) => this.done(req, r.open(u, res)),
          (err) => this.fail(req, err),
        );
        return false;
      }
      case Opcode.CREATE: {
        if (!fs.create) return this.enosys(req);
        const [flags, mode, umask] = [buf.readUInt32LE(at), buf.readUInt32LE(at + 4), buf.readUInt32LE(at + 8)];
        fs.create(req, ino, cstring(buf, at + 16, end), mode, flags, umask).then(
          (res) => {
            this.lookups.add(res.ino);
            if (r.create(u, res) !== 'sent') this.forgetOne(res.ino, 1);
            this.finish(req);
          },
          (err) => this.fail(req, err),
        );
        return false;
      }
      case Opcode.READ:
        if (!fs.read) return this.enosys(req);
        fs.read(req, ino, readU64(buf, at), readU64(buf, at + 8), buf.readUInt32LE(at + 16)).then(
          (data) => this.done(req, r.data(u, data)),
          (err) => this.fail(req, err),
        );
        return false;
      case Opcode.WRITE: {
        if (!fs.write) return this.enosys(req);
        const size = buf.readUInt32LE(at + 16);
        const data = buf.subarray(at + WRITE_IN_SIZE, at + WRITE_IN_SIZE + size);
        fs.write(req, ino, readU64(buf, at), readU64(buf, at + 8), data, buf.readUInt32LE(at + 20)).then(
          (n) => {
            this.releaseBuffer(buf);
            this.done(req, r.size(u, n));
          },
          (err) => {
            this.releaseBuffer(buf);
            this.fail(req, err);
          },
        );
        return true;
      }
      case Opcode.STATFS:
        if (!fs.statfs) return this.answered(req, r.statfs(u, DEFAULT_STATFS));
        fs.statfs(req, ino).then(
          (s) => this.done(req, r.statfs(u, s)),
          (err) => this.fail(req, err),
        );
        return false;
      case Opcode.RELEASE:
      case Opcode.RELEASEDIR: {
        const fh = readU64(buf, at);
        if (op === Opcode.RELEASE && fs.release) this.empty(req, fs.release(req, ino, fh, buf.readUInt32LE(at + 8)));
        else if (op === Opcode.RELEASEDIR && fs.releasedir) this.empty(req, fs.releasedir(req, ino, fh));
        else this.done(req, r.empty(u));
        return false;
      }
      case Opcode.FLUSH:
        if (!fs.flush) return this.answered(req, r.empty(u));
        this.empty(req, fs.flush(req, ino, readU64(buf, at), readU64(buf, at + 16)));
        return false;
      case Opcode.FSYNC:
      case Opcode.FSYNCDIR: {
        const method = op === Opcode.FSYNC ? fs.fsync : fs.fsyncdir;
        if (!method) return this.enosys(req);
        const datasync = (buf.readUInt32LE(at + 8) & FSYNC_FDATASYNC) !== 0;
        this.empty(req, method.call(fs, req, ino, readU64(buf, at), datasync));
        return false;
      }
      case Opcode.SETXATTR: {
        if (!fs.setxattr) return this.enosys(req);
        const [size, flags] = [buf.readUInt32LE(at), buf.readUInt32LE(at + 4)];
        const name = cstring(buf, at + 8, end);
        const valueAt = at + 8 + Buffer.byteLength(name) + 1;
        const value = Buffer.from(buf.subarray(valueAt, Math.min(end, valueAt + size)));
        this.empty(req, fs.setxattr(req, ino, name, value, flags));
        return false;
      }
      case Opcode.GETXATTR:
        if (!fs.getxattr) return this.enosys(req);
        this.sized(req, fs.getxattr(req, ino, cstring(buf, at + 8, end)), buf.readUInt32LE(at));
        return false;
      case Opcode.LISTXATTR:
        if (!fs.listxattr) return this.enosys(req);
        this.sized(
          req,
          fs.listxattr(req, ino).then((names) => Buffer.from(names.map((n) => `${n}\0`).join(''))),
          buf.readUInt32LE(at),
        );
        return false;
      case Opcode.REMOVEXATTR:
        if (!fs.removexattr) return this.enosys(req);
        this.empty(req, fs.removexattr(req, ino, cstring(buf, at, end)));
        return false;
      case Opcode.READDIR:
      case Opcode.READDIRPLUS: {
        if (!fs.readdir) return this.enosys(req);
        const list = new DirectoryListing(
          buf.readUInt32LE(at + 16),
          op === Opcode.READDIRPLUS,
          r.entryTimeout,
          r.attrTimeout,
        );
        fs.readdir(req, ino, readU64(buf, at), readU64(buf, at + 8), list).then(
          () => {
            for (const looked of list.looked) this.lookups.add(looked);
            if (r.data(u, list.buf.subarray(0, list.length)) !== 'sent')
              for (const looked of list.looked) this.forgetOne(looked, 1);
            this.finish(req);
          },
          (err) => this.fail(req, err),
        );
        return false;
      }
      case Opcode.ACCESS:
        if (!fs.access) return this.enosys(req);
        this.empty(req, fs.access(req, ino, buf.readUInt32LE(at)));
        return false;
      case Opcode.FALLOCATE:
        if (!fs.fallocate) return this.enosys(req);
        this.empty(
          req,
          fs.fallocate(
            req,
            ino,
            readU64(buf, at),
            readU64(buf, at + 8),
            readU64(buf, at + 16),
            buf.readUInt32LE(at + 24),
          ),
        );
        return false;
      case Opcode.LSEEK:
        if (!fs.lseek) return this.enosys(req);
        fs.lseek(req, ino, readU64(buf, at), readU64(buf, at + 8), buf.readUInt32LE(at + 16)).then(
          (offset) => this.done(req, r.offset(u, offset)),
          (err) => this.fail(req, err),
        );
        return false;
      case Opcode.COPY_FILE_RANGE: {
        if (!fs.copyFileRange) return this.enosys(req);
        const args = [readU64(buf, at), readU64(buf, at + 8), readU64(buf, at + 16), readU64(buf, at + 24)] as const;
        const [fhIn, offIn, inoOut, fhOut] = args;
        const [offOut, len, flags] = [readU64(buf, at + 32), readU64(buf, at + 40), readU64(buf, at + 48)];
        fs.copyFileRange(req, ino, fhIn, offIn, inoOut, fhOut, offOut, Math.min(len, 0xfffff000), flags).then(
          (n) => this.done(req, r.size(u, n)),
          (err) => this.fail(req, err),
        );
        return false;
      }
      case Opcode.NOTIFY_REPLY:
        // Only answers NOTIFY_RETRIEVE, which we never send; it expects no reply.
        this.finish(req);
        return false;
      default:
        return this.enosys(req);
    }
  }
}
