/**
 * An in-memory filesystem on the FUSE library: the example that shows the
 * interface, the filesystem the library's mount tests drive with real tools,
 * and the benchmark's ceiling (what FUSE + this library + Node allow when the
 * filesystem itself costs nothing).
 *
 * It trusts the kernel for permissions (mount with default_permissions).
 */
import type { DirectoryListing } from './dirents.js';
import { fuseError } from './errno.js';
import { Arena, FileData } from './example-memfs-data.js';
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
} from './filesystem.js';
import { RenameFlag, ROOT_ID } from './protocol.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

interface MemInode {
  attr: Attr;
  /** Directories: name -> inode; '..' is `parent`. */
  children?: Map<string, number>;
  parent?: number;
  data?: FileData;
  target?: string;
  xattrs?: Map<string, Buffer>;
  /** Open handles: an unlinked file lives until the last is released and the kernel forgets it. */
  opens: number;
}

function now(): Timespec {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
}

export interface MemfsOptions {
  preallocMiB?: number;
  /**
   * false leaves the xattr methods unimplemented (ENOSYS). The kernel then
   * stops asking, instead of sending GETXATTR security.capability before
   * every WRITE (FUSE does not cache its absence), as the fuse-native ceiling does.
   */
  xattrs?: boolean;
}

export class ExampleMemfs implements FuseFilesystem {
  private readonly inodes = new Map<number, MemInode>();
  private readonly listings = new Map<number, [string, number][]>();
  private readonly kernelRefs = new Set<number>();
  private nextIno = ROOT_ID + 1;
  private nextFh = 1;
  private readonly arena: Arena;

  constructor(opts: MemfsOptions = {}) {
    this.arena = new Arena(opts.preallocMiB ?? 0);
    if (opts.xattrs === false) {
      const self = this as Partial<FuseFilesystem>;
      self.setxattr = self.getxattr = self.listxattr = self.removexattr = undefined;
    }
    const root = this.newInode(S_IFDIR | 0o755, process.getuid?.() ?? 0, process.getgid?.() ?? 0, ROOT_ID);
    root.parent = ROOT_ID;
  }

  /** Inodes alive (tests: unlinked and forgotten ones are gone). */
  get inodeCount(): number {
    return this.inodes.size;
  }

  private newInode(mode: number, uid: number, gid: number, ino = this.nextIno++): MemInode {
    const t = now();
    const attr: Attr = {
      ino,
      size: 0,
      blocks: 0,
      atime: t.sec,
      atimeNs: t.nsec,
      mtime: t.sec,
      mtimeNs: t.nsec,
      ctime: t.sec,
      ctimeNs: t.nsec,
      btime: t.sec,
      btimeNs: t.nsec,
      mode,
      nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1,
      uid,
      gid,
      rdev: 0,
      // Tools size their buffers by st_blksize (cp: at least 128 KiB): 1 MiB lets them send 1 MiB WRITEs.
      blksize: 1024 * 1024,
    };
    const node: MemInode = { attr, opens: 0 };
    if ((mode & S_IFMT) === S_IFDIR) node.children = new Map();
    if ((mode & S_IFMT) === S_IFREG) node.data = new FileData();
    this.inodes.set(ino, node);
    return node;
  }

  private get(ino: number): MemInode {
    const node = this.inodes.get(ino);
    if (!node) throw fuseError('ENOENT');
    return node;
  }

  private dir(ino: number): MemInode & { children: Map<string, number> } {
    const node = this.get(ino);
    if (!node.children) throw fuseError('ENOTDIR');
    return node as MemInode & { children: Map<string, number> };
  }

  private touch(attr: Attr, what: 'm' | 'c'): void {
    const t = now();
    attr.ctime = t.sec;
    attr.ctimeNs = t.nsec;
    if (what === 'm') {
      attr.mtime = t.sec;
      attr.mtimeNs = t.nsec;
    }
  }

  private entry(node: MemInode): Entry {
    this.kernelRefs.add(node.attr.ino);
    return { ino: node.attr.ino, attr: node.attr };
  }

  /** Frees an inode nobody can reach: no name, no open handle, no kernel reference. */
  private maybeFree(node: MemInode): void {
    const ino = node.attr.ino;
    if (node.attr.nlink === 0 && node.opens === 0 && !this.kernelRefs.has(ino) && ino !== ROOT_ID) {
      this.inodes.delete(ino);
    }
  }

  private create_(ctx: RequestContext, parent: number, name: string, mode: number): MemInode {
    const dir = this.dir(parent);
    if (Buffer.byteLength(name) > 255) throw fuseError('ENAMETOOLONG');
    if (dir.children.has(name)) throw fuseError('EEXIST');
    const node = this.newInode(mode, ctx.uid, ctx.gid);
    dir.children.set(name, node.attr.ino);
    if (node.children) {
      node.parent = parent;
      dir.attr.nlink++;
    }
    this.touch(dir.attr, 'm');
    return node;
  }

  forget(ino: number): void {
    this.kernelRefs.delete(ino);
    const node = this.inodes.get(ino);
    if (node) this.maybeFree(node);
  }

  async lookup(_ctx: RequestContext, parent: number, name: string): Promise<Entry> {
    const ino = this.dir(parent).children.get(name);
    if (ino === undefined) throw fuseError('ENOENT');
    return this.entry(this.get(ino));
  }

  async getattr(_ctx: RequestContext, ino: number): Promise<Attr> {
    return this.get(ino).attr;
  }

  async setattr(_ctx: RequestContext, ino: number, c: SetattrChanges): Promise<Attr> {
    const node = this.get(ino);
    const a = node.attr;
    if (c.size !== undefined) {
      if (!node.data) throw fuseError(node.children ? 'EISDIR' : 'EINVAL');
      node.data.truncate(c.size);
      a.size = c.size;
      a.blocks = Math.ceil(c.size / 512);
      this.touch(a, 'm');
    }
    if (c.mode !== undefined) a.mode = (a.mode & S_IFMT) | (c.mode & 0o7777);
    if (c.uid !== undefined) a.uid = c.uid;
    if (c.gid !== undefined) a.gid = c.gid;
    if (c.atime !== undefined) {
      const t = c.atime === 'now' ? now() : c.atime;
      a.atime = t.sec;
      a.atimeNs = t.nsec;
    }
    if (c.mtime !== undefined) {
      const t = c.mtime === 'now' ? now() : c.mtime;
      a.mtime = t.sec;
      a.mtimeNs = t.nsec;
    }
    this.touch(a, 'c');
    if (c.ctime !== undefined) {
      a.ctime = c.ctime.sec;
      a.ctimeNs = c.ctime.nsec;
    }
    return a;
  }

  async readlink(_ctx: RequestContext, ino: number): Promise<string> {
    const target = this.get(ino).target;
    if (target === undefined) throw fuseError('EINVAL');
    return target;
  }

  async symlink(ctx: RequestContext, parent: number, name: string, target: string): Promise<Entry> {
    const node = this.create_(ctx, parent, name, S_IFLNK | 0o777);
    node.target = target;
    node.attr.size = Buffer.byteLength(target);
    return this.entry(node);
  }

  async mknod(ctx: RequestContext, parent: number, name: string, mode: number, rdev: number): Promise<Entry> {
    const node = this.create_(ctx, parent, name, mode);
    node.attr.rdev = rdev;
    return this.entry(node);
  }

  async mkdir(ctx: RequestContext, parent: number, name: string, mode: number): Promise<Entry> {
    return this.entry(this.create_(ctx, parent, name, S_IFDIR | (mode & 0o7777)));
  }

  private removeName(parent: number, name: string, wantDir: boolean): void {
    const dir = this.dir(parent);
    const ino = dir.children.get(name);
    if (ino === undefined) throw fuseError('ENOENT');
    const node = this.get(ino);
    if (wantDir && !node.children) throw fuseError('ENOTDIR');
    if (!wantDir && node.children) throw fuseError('EISDIR');
    if (node.children && node.children.size > 0) throw fuseError('ENOTEMPTY');
    dir.children.delete(name);
    this.touch(dir.attr, 'm');
    if (node.children) {
      dir.attr.nlink--;
      node.attr.nlink = 0;
    } else node.attr.nlink--;
    this.touch(node.attr, 'c');
    this.maybeFree(node);
  }

  async unlink(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    this.removeName(parent, name, false);
  }

  async rmdir(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    this.removeName(parent, name, true);
  }

  async rename(
    _ctx: RequestContext,
    parent: number,
    name: string,
    newParent: number,
    newName: string,
    flags: number,
  ): Promise<void> {
    const from = this.dir(parent);
    const to = this.dir(newParent);
    const ino = from.children.get(name);
    if (ino === undefined) throw fuseError('ENOENT');
    const node = this.get(ino);
    const targetIno = to.children.get(newName);
    if (flags & RenameFlag.EXCHANGE) {
      if (targetIno === undefined) throw fuseError('ENOENT');
      const target = this.get(targetIno);
      from.children.set(name, targetIno);
      to.children.set(newName, ino);
      this.reparent(target, from, to);
      this.reparent(node, to, from);
      for (const n of [from, to, node, target]) this.touch(n.attr, n === node || n === target ? 'c' : 'm');
      return;
    }
    if (targetIno !== undefined) {
      if (flags & RenameFlag.NOREPLACE) throw fuseError('EEXIST');
      if (targetIno === ino) return;
      this.removeName(newParent, newName, this.get(targetIno).children !== undefined);
    }
    from.children.delete(name);
    to.children.set(newName, ino);
    this.reparent(node, to, from);
    this.touch(from.attr, 'm');
    this.touch(to.attr, 'm');
    this.touch(node.attr, 'c');
  }

  /** A directory moved from `from` to `to`: its '..' and both link counts follow. */
  private reparent(node: MemInode, to: MemInode, from: MemInode): void {
    if (!node.children || to === from) return;
    node.parent = to.attr.ino;
    to.attr.nlink++;
    from.attr.nlink--;
  }

  async link(_ctx: RequestContext, ino: number, newParent: number, newName: string): Promise<Entry> {
    const node = this.get(ino);
    if (node.children) throw fuseError('EPERM');
    const dir = this.dir(newParent);
    if (dir.children.has(newName)) throw fuseError('EEXIST');
    dir.children.set(newName, ino);
    node.attr.nlink++;
    this.touch(node.attr, 'c');
    this.touch(dir.attr, 'm');
    return this.entry(node);
  }

  async open(_ctx: RequestContext, ino: number): Promise<OpenResult> {
    this.get(ino).opens++;
    return { fh: this.nextFh++, keepCache: true };
  }

  async create(ctx: RequestContext, parent: number, name: string, mode: number): Promise<CreateResult> {
    const node = this.create_(ctx, parent, name, S_IFREG | (mode & 0o7777));
    node.opens++;
    return { ...this.entry(node), fh: this.nextFh++ };
  }

  async read(_ctx: RequestContext, ino: number, _fh: number, offset: number, size: number): Promise<Buffer[]> {
    const data = this.get(ino).data;
    if (!data) throw fuseError('EISDIR');
    return data.read(offset, size);
  }

  async write(_ctx: RequestContext, ino: number, _fh: number, offset: number, bytes: Buffer): Promise<number> {
    const node = this.get(ino);
    if (!node.data) throw fuseError('EISDIR');
    node.data.write(this.arena, offset, bytes);
    node.attr.size = node.data.size;
    node.attr.blocks = Math.ceil(node.data.size / 512);
    this.touch(node.attr, 'm');
    return bytes.length;
  }

  async release(_ctx: RequestContext, ino: number): Promise<void> {
    const node = this.inodes.get(ino);
    if (!node) return;
    node.opens--;
    this.maybeFree(node);
  }

  async fallocate(_ctx: RequestContext, ino: number, _fh: number, offset: number, length: number, mode: number) {
    const node = this.get(ino);
    if (!node.data) throw fuseError('EISDIR');
    if (mode !== 0) throw fuseError('EOPNOTSUPP');
    if (offset + length > node.data.size) {
      node.data.truncate(offset + length);
      node.attr.size = node.data.size;
      node.attr.blocks = Math.ceil(node.data.size / 512);
      this.touch(node.attr, 'm');
    }
  }

  async statfs(): Promise<StatfsResult> {
    const free = 0x3fffffff;
    return {
      blocks: free,
      bfree: free,
      bavail: free,
      files: free,
      ffree: free - this.inodes.size,
      bsize: 4096,
      namelen: 255,
      frsize: 4096,
    };
  }

  async setxattr(_ctx: RequestContext, ino: number, name: string, value: Buffer, flags: number): Promise<void> {
    const node = this.get(ino);
    node.xattrs ??= new Map();
    const has = node.xattrs.has(name);
    if (flags & XATTR_CREATE && has) throw fuseError('EEXIST');
    if (flags & XATTR_REPLACE && !has) throw fuseError('ENODATA');
    node.xattrs.set(name, value);
    this.touch(node.attr, 'c');
  }

  async getxattr(_ctx: RequestContext, ino: number, name: string): Promise<Buffer> {
    const value = this.get(ino).xattrs?.get(name);
    if (!value) throw fuseError('ENODATA');
    return value;
  }

  async listxattr(_ctx: RequestContext, ino: number): Promise<string[]> {
    return [...(this.get(ino).xattrs?.keys() ?? [])];
  }

  async removexattr(_ctx: RequestContext, ino: number, name: string): Promise<void> {
    const node = this.get(ino);
    if (!node.xattrs?.delete(name)) throw fuseError('ENODATA');
    this.touch(node.attr, 'c');
  }

  /** A directory handle holds the listing as it was at opendir: offsets are indexes into it. */
  async opendir(_ctx: RequestContext, ino: number): Promise<OpenResult> {
    const dir = this.dir(ino);
    const fh = this.nextFh++;
    this.listings.set(fh, [['.', ino], ['..', dir.parent ?? ROOT_ID], ...dir.children]);
    return { fh };
  }

  async readdir(_ctx: RequestContext, _ino: number, fh: number, offset: number, list: DirectoryListing): Promise<void> {
    const listing = this.listings.get(fh);
    if (!listing) throw fuseError('EBADF');
    for (let i = offset; i < listing.length; i++) {
      const [name, ino] = listing[i]!;
      const node = this.inodes.get(ino);
      if (!node) continue; // removed since opendir
      if (!list.add(name, i + 1, { ino, attr: node.attr })) return;
      // READDIRPLUS entries other than . and .. are references the kernel will forget.
      if (list.plus && name !== '.' && name !== '..') this.kernelRefs.add(ino);
    }
  }

  async releasedir(_ctx: RequestContext, _ino: number, fh: number): Promise<void> {
    this.listings.delete(fh);
  }
}
