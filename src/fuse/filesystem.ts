/**
 * The inode-based filesystem interface the session dispatches to.
 *
 * Node ids are the filesystem's inode numbers (1 is the root). Every method
 * is optional: a missing one answers ENOSYS, except where the kernel expects
 * a harmless default (open/opendir succeed with fh 0, release/flush succeed).
 * A method fails by throwing: a FuseErrno, or any error whose `code` names an
 * errno ('ENOENT', as Node's own errors do); anything else answers EIO.
 *
 * Lookup counts are the library's business: every Entry returned (LOOKUP,
 * MKNOD, MKDIR, SYMLINK, LINK, CREATE, READDIRPLUS) counts one reference the
 * kernel holds, and `forget(ino)` is called once the kernel dropped them all.
 */
import type { DirectoryListing } from './dirents.js';

/** Attributes as the kernel sees them; times are seconds + nanoseconds. */
export interface Attr {
  ino: number;
  size: number;
  blocks: number;
  atime: number;
  atimeNs: number;
  mtime: number;
  mtimeNs: number;
  ctime: number;
  ctimeNs: number;
  /** Birth time, reported through STATX when given. */
  btime?: number;
  btimeNs?: number;
  /** File type and permission bits (S_IFREG | 0o644...). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

/** A name bound to an inode, as LOOKUP and the creating calls return it. */
export interface Entry {
  /** 0 in a LOOKUP reply caches the name's absence for entryTimeout. */
  ino: number;
  generation?: number;
  attr: Attr;
  /** Seconds the kernel may trust the name and the attributes; the session's defaults otherwise. */
  entryTimeout?: number;
  attrTimeout?: number;
}

export interface OpenResult {
  fh: number;
  /** Keep the page cache from earlier opens (the file did not change). */
  keepCache?: boolean;
  directIo?: boolean;
  nonSeekable?: boolean;
  /** Directories: let the kernel cache the listing. */
  cacheDir?: boolean;
}

export type CreateResult = Entry & OpenResult;

/** Who is asking: from the request header. */
export interface RequestContext {
  readonly unique: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /** Set when the kernel sent INTERRUPT for this request (the caller got a signal). */
  readonly interrupted: boolean;
}

export interface Timespec {
  sec: number;
  nsec: number;
}

/** SETATTR: only the present fields change. 'now' is UTIME_NOW (the server's clock). */
export interface SetattrChanges {
  fh?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: Timespec | 'now';
  mtime?: Timespec | 'now';
  ctime?: Timespec;
  /** The kernel asks to clear setuid/setgid (HANDLE_KILLPRIV_V2 only). */
  killSuidgid?: boolean;
  /** The raw valid bits, for what the fields above do not say. */
  valid: number;
}

export interface StatfsResult {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export interface ConnectionInfo {
  kernelMinor: number;
  /** The minor version the session speaks (min of the kernel's and ours). */
  minor: number;
  /** Flags the kernel offered and flags in force after negotiation. */
  offered: number;
  flags: number;
  maxWrite: number;
  maxReadahead: number;
}

/** Bytes for READ: one buffer or pieces written with one writev (no copy into a reply buffer). */
export type ReadResult = Buffer | Buffer[];

export interface FuseFilesystem {
  init?(conn: ConnectionInfo): void | Promise<void>;
  destroy?(): void | Promise<void>;
  /** The kernel holds no more references to ino (lookup count reached 0). Not called for the root. */
  forget?(ino: number): void;

  lookup?(ctx: RequestContext, parent: number, name: string): Promise<Entry>;
  getattr?(ctx: RequestContext, ino: number, fh: number | undefined): Promise<Attr>;
  setattr?(ctx: RequestContext, ino: number, changes: SetattrChanges): Promise<Attr>;
  readlink?(ctx: RequestContext, ino: number): Promise<string | Buffer>;
  symlink?(ctx: RequestContext, parent: number, name: string, target: string): Promise<Entry>;
  mknod?(ctx: RequestContext, parent: number, name: string, mode: number, rdev: number, umask: number): Promise<Entry>;
  mkdir?(ctx: RequestContext, parent: number, name: string, mode: number, umask: number): Promise<Entry>;
  unlink?(ctx: RequestContext, parent: number, name: string): Promise<void>;
  rmdir?(ctx: RequestContext, parent: number, name: string): Promise<void>;
  /** flags: RenameFlag bits (NOREPLACE, EXCHANGE) from renameat2(2); 0 for rename(2). */
  rename?(
    ctx: RequestContext,
    parent: number,
    name: string,
    newParent: number,
    newName: string,
    flags: number,
  ): Promise<void>;
  link?(ctx: RequestContext, ino: number, newParent: number, newName: string): Promise<Entry>;
  open?(ctx: RequestContext, ino: number, flags: number): Promise<OpenResult>;
  create?(
    ctx: RequestContext,
    parent: number,
    name: string,
    mode: number,
    flags: number,
    umask: number,
  ): Promise<CreateResult>;
  read?(ctx: RequestContext, ino: number, fh: number, offset: number, size: number): Promise<ReadResult>;
  /** data is only valid until the returned promise settles: copy what you keep. Returns bytes written. */
  write?(ctx: RequestContext, ino: number, fh: number, offset: number, data: Buffer, flags: number): Promise<number>;
  flush?(ctx: RequestContext, ino: number, fh: number, lockOwner: number): Promise<void>;
  release?(ctx: RequestContext, ino: number, fh: number, flags: number): Promise<void>;
  fsync?(ctx: RequestContext, ino: number, fh: number, datasync: boolean): Promise<void>;
  statfs?(ctx: RequestContext, ino: number): Promise<StatfsResult>;
  setxattr?(ctx: RequestContext, ino: number, name: string, value: Buffer, flags: number): Promise<void>;
  /** The whole value; the library answers size probes and ERANGE. */
  getxattr?(ctx: RequestContext, ino: number, name: string): Promise<Buffer>;
  listxattr?(ctx: RequestContext, ino: number): Promise<string[]>;
  removexattr?(ctx: RequestContext, ino: number, name: string): Promise<void>;
  opendir?(ctx: RequestContext, ino: number, flags: number): Promise<OpenResult>;
  /**
   * Fill `list` from `offset` (0, or an offset an earlier entry carried) until
   * list.add answers false. list.plus tells READDIRPLUS, whose entries count lookups.
   */
  readdir?(ctx: RequestContext, ino: number, fh: number, offset: number, list: DirectoryListing): Promise<void>;
  releasedir?(ctx: RequestContext, ino: number, fh: number): Promise<void>;
  fsyncdir?(ctx: RequestContext, ino: number, fh: number, datasync: boolean): Promise<void>;
  /** mask: R_OK/W_OK/X_OK/F_OK. Not sent with default_permissions. */
  access?(ctx: RequestContext, ino: number, mask: number): Promise<void>;
  fallocate?(ctx: RequestContext, ino: number, fh: number, offset: number, length: number, mode: number): Promise<void>;
  /** whence: SEEK_DATA (3) or SEEK_HOLE (4); the kernel handles the others. */
  lseek?(ctx: RequestContext, ino: number, fh: number, offset: number, whence: number): Promise<number>;
  copyFileRange?(
    ctx: RequestContext,
    inoIn: number,
    fhIn: number,
    offsetIn: number,
    inoOut: number,
    fhOut: number,
    offsetOut: number,
    length: number,
    flags: number,
  ): Promise<number>;
}
