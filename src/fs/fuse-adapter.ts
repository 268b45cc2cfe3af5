import type { DirectoryListing } from '../fuse/dirents.js';
import { FuseErrno } from '../fuse/errno.js';
import type {
  Attr,
  CreateResult,
  Entry,
  FuseFilesystem,
  OpenResult,
  RequestContext,
  SetattrChanges,
  StatfsResult,
  Timespec,
} from '../fuse/filesystem.js';
import { RenameFlag } from '../fuse/protocol.js';
import type { FuseMetrics } from '../metrics/fuse.js';
import { Errno, ErrnoError, toErrno } from './errno.js';
import { childPath, InodeTable } from './inode-table.js';
import { accessAllowed, type Caller, chownProblem, mknodAt } from './ownership.js';
import type { Stat, Vfs } from './vfs.js';

const S_IFDIR = 0o040000;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
/** Directory handles live apart from the Vfs's file descriptors, so a getattr by fh never mistakes one for the other. */
const DIR_FH_BASE = 2 ** 40;

export interface FuseAdapterOptions {
  /** Serve user.* xattrs (default); off, the xattr calls answer ENOSYS and the kernel stops asking. */
  xattrs?: boolean;
  /**
   * The mount has default_permissions: the kernel checks modes and chown's
   * rules against the attributes we report. Off, chown is checked here and
   * ACCESS answers from the modes.
   */
  kernelChecksPermissions?: boolean;
  onError?: (op: string, err: unknown) => void;
}

function splitMs(ms: number): { sec: number; ns: number } {
  const sec = Math.floor(ms / 1000);
  return { sec, ns: Math.round((ms - sec * 1000) * 1e6) };
}

function attrOf(ino: number, s: Stat): Attr {
  const a = splitMs(s.atime);
  const m = splitMs(s.mtime);
  const c = splitMs(s.ctime);
  return {
    ino,
    size: s.size,
    blocks: s.blocks,
    atime: a.sec,
    atimeNs: a.ns,
    mtime: m.sec,
    mtimeNs: m.ns,
    ctime: c.sec,
    ctimeNs: c.ns,
    mode: s.mode,
    nlink: s.nlink,
    uid: s.uid,
    gid: s.gid,
    rdev: s.rdev ?? 0,
    blksize: s.blksize,
  };
}

function callerOf(ctx: RequestContext): Caller {
  return { uid: ctx.uid, gid: ctx.gid };
}

function msOf(t: Timespec | 'now'): number {
  return t === 'now' ? Date.now() : t.sec * 1000 + t.nsec / 1e6;
}

/** Errors as src/fuse wants them: positive errno in a FuseErrno (src/fs/errno.ts speaks fuse-native's negative ones). */
function fuseErrnoOf(err: unknown): FuseErrno {
  const errno = toErrno(err);
  return new FuseErrno(-errno, (err as Error)?.message);
}

/**
 * Lilio's Vfs served through our own FUSE session (src/fuse): the kernel's
 * inode-based requests become the Vfs's path-based calls, through the inode
 * table. Like ops.ts for fuse-native, it only converts and counts; storage
 * logic stays in the Vfs and the engine.
 */
export class VfsFuseAdapter implements FuseFilesystem {
  readonly inodes = new InodeTable();
  private readonly dirs = new Map<number, { path: string; names?: string[] }>();
  private nextDirFh = DIR_FH_BASE;
  /** Size and mtime seen at the last open, per inode: unchanged, the kernel keeps its page cache (auto_cache). */
  private readonly seenAtOpen = new Map<number, string>();

  constructor(
    private readonly vfs: Vfs,
    private readonly metrics: FuseMetrics,
    private readonly options: FuseAdapterOptions = {},
  ) {
    if (options.xattrs === false) {
      const self = this as Partial<FuseFilesystem>;
      self.setxattr = self.getxattr = self.listxattr = self.removexattr = undefined;
    }
  }

  /** Runs one operation: counted like ops.ts does, errors turned into errnos. */
  private async run<T>(op: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await work();
      this.metrics.recordOp(op, (performance.now() - started) / 1000, 0);
      return result;
    } catch (err) {
      const fuseErr = err instanceof FuseErrno ? err : fuseErrnoOf(err);
      this.metrics.recordOp(op, (performance.now() - started) / 1000, -fuseErr.errno);
      this.options.onError?.(op, err);
      throw fuseErr;
    }
  }

  private pathOf(ino: number): string {
    const path = this.inodes.path(ino);
    if (path === undefined) throw new ErrnoError(Errno.ENOENT, `inode ${ino} is not known`);
    return path;
  }

  private async entryFor(path: string): Promise<Entry> {
    const stat = await this.vfs.getattr(path);
    const ino = this.inodes.ensure(path);
    return { ino, attr: attrOf(ino, stat) };
  }

  private async statOf(ino: number, fh: number | undefined): Promise<Stat> {
    const path = this.pathOf(ino);
    if (fh !== undefined && fh < DIR_FH_BASE) return this.vfs.fgetattr(path, fh);
    if (this.inodes.isDetached(ino)) throw new ErrnoError(Errno.ENOENT, `${path} was removed`);
    return this.vfs.getattr(path);
  }

  forget(ino: number): void {
    this.inodes.forget(ino);
    this.seenAtOpen.delete(ino);
  }

  lookup(_ctx: RequestContext, parent: number, name: string): Promise<Entry> {
    return this.run('lookup', () => this.entryFor(childPath(this.pathOf(parent), name)));
  }

  getattr(_ctx: RequestContext, ino: number, fh: number | undefined): Promise<Attr> {
    return this.run('getattr', async () => attrOf(ino, await this.statOf(ino, fh)));
  }

  setattr(ctx: RequestContext, ino: number, c: SetattrChanges): Promise<Attr> {
    return this.run('setattr', async () => {
      const path = this.pathOf(ino);
      const fh = c.fh !== undefined && c.fh < DIR_FH_BASE ? c.fh : undefined;
      if ((c.uid !== undefined || c.gid !== undefined) && !this.options.kernelChecksPermissions) {
        const s = await this.statOf(ino, fh);
        const current = { mode: s.mode, uid: s.uid, gid: s.gid, atimeMs: 0, mtimeMs: 0, ctimeMs: 0 };
        const problem = chownProblem(callerOf(ctx), current, c.uid ?? -1, c.gid ?? -1);
        if (problem) throw new ErrnoError(Errno.EPERM, `chown ${path}: ${problem}`);
      }
      if (c.size !== undefined) {
        if (fh !== undefined) await this.vfs.ftruncate(fh, c.size);
        else await this.vfs.truncate(path, c.size);
      }
      if (c.mode !== undefined) await this.vfs.chmod(path, c.mode);
      if (c.uid !== undefined || c.gid !== undefined) await this.vfs.chown(path, c.uid ?? -1, c.gid ?? -1);
      if (c.atime !== undefined || c.mtime !== undefined) {
        // The Vfs sets both times at once: the one not asked for keeps its value.
        const current = c.atime === undefined || c.mtime === undefined ? await this.statOf(ino, fh) : undefined;
        const atime = c.atime !== undefined ? msOf(c.atime) : current!.atime;
        const mtime = c.mtime !== undefined ? msOf(c.mtime) : current!.mtime;
        await this.vfs.utimens(path, atime, mtime);
      }
      return attrOf(ino, await this.statOf(ino, fh));
    });
  }

  readlink(_ctx: RequestContext, ino: number): Promise<string> {
    return this.run('readlink', () => this.vfs.readlink(this.pathOf(ino)));
  }

  symlink(ctx: RequestContext, parent: number, name: string, target: string): Promise<Entry> {
    return this.run('symlink', async () => {
      const path = childPath(this.pathOf(parent), name);
      await this.vfs.symlink(target, path, callerOf(ctx));
      return this.entryFor(path);
    });
  }

  mkdir(ctx: RequestContext, parent: number, name: string, mode: number): Promise<Entry> {
    return this.run('mkdir', async () => {
      const path = childPath(this.pathOf(parent), name);
      await this.vfs.mkdir(path, mode, callerOf(ctx));
      return this.entryFor(path);
    });
  }

  /** mkfifo, mknod (devices: the kernel allows it to root only), bind(2) of a unix socket, mknod of a file. */
  mknod(ctx: RequestContext, parent: number, name: string, mode: number, rdev: number): Promise<Entry> {
    return this.run('mknod', async () => {
      const path = childPath(this.pathOf(parent), name);
      await mknodAt(this.vfs, path, mode, rdev, callerOf(ctx));
      return this.entryFor(path);
    });
  }

  /**
   * access(2). Sent only without default_permissions (the kernel checks
   * itself otherwise): answered from the modes, as the kernel would.
   */
  access(ctx: RequestContext, ino: number, mask: number): Promise<void> {
    return this.run('access', async () => {
      const s = await this.statOf(ino, undefined);
      if (!accessAllowed(callerOf(ctx), s.mode, s.uid, s.gid, mask)) {
        throw new ErrnoError(Errno.EACCES, `access ${this.pathOf(ino)}: mode 0o${(s.mode & 0o7777).toString(8)}`);
      }
    });
  }

  unlink(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    return this.run('unlink', async () => {
      const path = childPath(this.pathOf(parent), name);
      await this.vfs.unlink(path);
      this.inodes.detach(path);
    });
  }

  rmdir(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    return this.run('rmdir', async () => {
      const path = childPath(this.pathOf(parent), name);
      await this.vfs.rmdir(path);
      this.inodes.detach(path);
    });
  }

  rename(_ctx: RequestContext, parent: number, name: string, newParent: number, newName: string, flags: number) {
    return this.run('rename', async () => {
      const from = childPath(this.pathOf(parent), name);
      const to = childPath(this.pathOf(newParent), newName);
      if (flags === RenameFlag.EXCHANGE) {
        await this.vfs.exchange(from, to);
        this.inodes.exchange(from, to);
        return;
      }
      if (flags & ~RenameFlag.NOREPLACE) throw new ErrnoError(Errno.EINVAL, `rename flags ${flags}`);
      await this.vfs.rename(from, to, { noReplace: (flags & RenameFlag.NOREPLACE) !== 0 });
      this.inodes.rename(from, to);
    });
  }

  link(): Promise<Entry> {
    return this.run('link', async () => {
      await this.vfs.link();
      throw new ErrnoError(Errno.EPERM, 'hard links are not supported');
    });
  }

  open(_ctx: RequestContext, ino: number, flags: number): Promise<OpenResult> {
    return this.run('open', async () => {
      const path = this.pathOf(ino);
      const fh = await this.vfs.open(path, flags);
      this.metrics.setOpenFiles(this.vfs.openFiles);
      return { fh, keepCache: await this.unchangedSinceLastOpen(ino, path, fh) };
    });
  }

  /** Close-to-open: the page cache survives an open only when size and mtime are what the last open saw. */
  private async unchangedSinceLastOpen(ino: number, path: string, fh: number): Promise<boolean> {
    const s = await this.vfs.fgetattr(path, fh);
    const seen = `${s.size}:${s.mtime}`;
    const same = this.seenAtOpen.get(ino) === seen;
    this.seenAtOpen.set(ino, seen);
    return same;
  }

  create(ctx: RequestContext, parent: number, name: string, mode: number): Promise<CreateResult> {
    return this.run('create', async () => {
      const path = childPath(this.pathOf(parent), name);
      const fh = await this.vfs.create(path, mode, callerOf(ctx));
      this.metrics.setOpenFiles(this.vfs.openFiles);
      const ino = this.inodes.ensure(path);
      const stat = await this.vfs.fgetattr(path, fh);
      this.seenAtOpen.delete(ino);
      return { ino, attr: attrOf(ino, stat), fh };
    });
  }

  read(_ctx: RequestContext, _ino: number, fh: number, offset: number, size: number): Promise<Buffer> {
    return this.run('read', async () => {
      const buf = Buffer.allocUnsafe(size);
      const n = await this.vfs.read(fh, buf, size, offset);
      this.metrics.recordBytes('read', n);
      return n === size ? buf : buf.subarray(0, n);
    });
  }

  write(_ctx: RequestContext, _ino: number, fh: number, offset: number, data: Buffer): Promise<number> {
    return this.run('write', async () => {
      const n = await this.vfs.write(fh, data, data.length, offset);
      this.metrics.recordBytes('written', n);
      return n;
    });
  }

  flush(_ctx: RequestContext, _ino: number, fh: number): Promise<void> {
    return this.run('flush', () => this.vfs.flush(fh));
  }

  release(_ctx: RequestContext, ino: number, fh: number): Promise<void> {
    return this.run('release', async () => {
      // What this handle wrote went through the kernel's page cache, which holds it: the state the
      // last close leaves is what the next open may keep the cache for. Read in-process, before the
      // descriptor goes (a commit does not change size or mtime).
      const path = this.inodes.path(ino);
      const s = path !== undefined ? await this.vfs.fgetattr(path, fh).catch(() => undefined) : undefined;
      await this.vfs.release(fh);
      this.metrics.setOpenFiles(this.vfs.openFiles);
      if (s && !this.inodes.isDetached(ino)) this.seenAtOpen.set(ino, `${s.size}:${s.mtime}`);
    });
  }

  fsync(_ctx: RequestContext, _ino: number, fh: number): Promise<void> {
    return this.run('fsync', () => this.vfs.fsync(fh));
  }

  statfs(): Promise<StatfsResult> {
    return this.run('statfs', async () => {
      const s = await this.vfs.statfs();
      return {
        blocks: s.blocks,
        bfree: s.bfree,
        bavail: s.bavail,
        files: s.files,
        ffree: s.ffree,
        bsize: s.bsize,
        namelen: s.namemax,
        frsize: s.frsize,
      };
    });
  }

  setxattr(_ctx: RequestContext, ino: number, name: string, value: Buffer, flags: number): Promise<void> {
    return this.run('setxattr', async () => {
      const path = this.pathOf(ino);
      if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
        const exists = (await this.vfs.listxattr(path)).includes(name);
        if (flags & XATTR_CREATE && exists) throw new ErrnoError(Errno.EEXIST, `${name} exists`);
        if (flags & XATTR_REPLACE && !exists) throw new ErrnoError(Errno.ENODATA, `no attribute ${name}`);
      }
      await this.vfs.setxattr(path, name, Buffer.from(value));
    });
  }

  getxattr(_ctx: RequestContext, ino: number, name: string): Promise<Buffer> {
    return this.run('getxattr', () => this.vfs.getxattr(this.pathOf(ino), name));
  }

  listxattr(_ctx: RequestContext, ino: number): Promise<string[]> {
    return this.run('listxattr', () => this.vfs.listxattr(this.pathOf(ino)));
  }

  removexattr(_ctx: RequestContext, ino: number, name: string): Promise<void> {
    return this.run('removexattr', () => this.vfs.removexattr(this.pathOf(ino), name));
  }

  opendir(_ctx: RequestContext, ino: number): Promise<OpenResult> {
    return this.run('opendir', async () => {
      const fh = this.nextDirFh++;
      this.dirs.set(fh, { path: this.pathOf(ino) });
      return { fh };
    });
  }

  readdir(_ctx: RequestContext, ino: number, fh: number, offset: number, list: DirectoryListing): Promise<void> {
    return this.run(list.plus ? 'readdirplus' : 'readdir', async () => {
      const dir = this.dirs.get(fh);
      if (!dir) throw new ErrnoError(Errno.EBADF, `bad directory handle ${fh}`);
      // The listing is taken once per opendir (and again on rewinddir), so offsets stay stable.
      if (offset === 0 || !dir.names) dir.names = await this.vfs.readdir(dir.path);
      const names = dir.names;
      for (let i = offset; i < names.length; i++) {
        const name = names[i]!;
        let entry: Entry;
        if (name === '.' || name === '..') {
          entry = { ino: 0, attr: attrOf(name === '.' ? ino : 1, { ...DIR_STAT }) };
        } else if (list.plus) {
          // Attributes of listed files come from the Vfs's listing cache, not one lookup each.
          const found = await this.entryFor(childPath(dir.path, name)).catch(() => undefined);
          if (!found) continue; // removed since the listing
          entry = found;
        } else {
          // Plain READDIR: the type is left unknown (DT_UNKNOWN) and d_ino is the known number if any.
          const path = childPath(dir.path, name);
          entry = { ino: 0, attr: attrOf(this.inodes.peek(path) ?? 0xffffffff, { ...DIR_STAT, mode: 0 }) };
        }
        if (!list.add(name, i + 1, entry)) return;
      }
    });
  }

  releasedir(_ctx: RequestContext, _ino: number, fh: number): Promise<void> {
    this.dirs.delete(fh);
    return Promise.resolve();
  }

  fallocate(_ctx: RequestContext, _ino: number, fh: number, offset: number, length: number, mode: number) {
    return this.run('fallocate', () => this.vfs.fallocate(fh, mode, offset, length));
  }

  lseek(_ctx: RequestContext, _ino: number, fh: number, offset: number, whence: number): Promise<number> {
    return this.run('lseek', () => this.vfs.lseek(fh, offset, whence));
  }
}

const DIR_STAT: Stat = {
  mode: S_IFDIR | 0o755,
  uid: 0,
  gid: 0,
  size: 4096,
  nlink: 2,
  blocks: 8,
  blksize: 4096,
  atime: 0,
  mtime: 0,
  ctime: 0,
};
