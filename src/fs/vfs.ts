import { constants } from 'node:fs';
import { hasCode, IsDirError, NotDirError, NotEmptyError, NotFoundError, ReadOnlyError } from '../core/errors.js';
import { type EntryKind, type ObjectAttrs, type ObjectRecord, SPECIAL_KINDS, type SpecialKind } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';
import { defaultAttrs } from '../engine/object-writer.js';
import { openXattr, resealXattrs, sealXattr } from '../engine/xattrs.js';
import { DirTimes } from './dir-times.js';
import { DirtyBudget } from './dirty-budget.js';
import { Errno, ErrnoError } from './errno.js';
import { HandleTraffic } from './object-traffic.js';
import { OpenFile, type OpenFileLimits } from './open-file.js';
import { type Caller, newOwner } from './ownership.js';
import { baseName, type MountPath, parentPrefix, parseMountPath } from './paths.js';

const { S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, O_RDONLY, O_TRUNC, O_APPEND } = constants;
/** st_mode's type bits for each kind of entry. */
const TYPE_BITS: Record<EntryKind, number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
};

export function isSpecialKind(kind: EntryKind): kind is SpecialKind {
  return (SPECIAL_KINDS as readonly string[]).includes(kind);
}
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
/** The access-mode bits of open flags (not exported by node:fs). */
const O_ACCMODE = 3;

export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  blocks: number;
  blksize: number;
  atime: number;
  mtime: number;
  ctime: number;
  /** Device number of a device node; absent (0) otherwise. */
  rdev?: number;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

export interface VfsOptions extends OpenFileLimits {
  readOnly: boolean;
}

/** The options a mount uses unless told otherwise. */
export function vfsOptions(lilio: Lilio, readOnly: boolean): VfsOptions {
  const writes = lilio.config.writes;
  return {
    readOnly,
    maxDirtyBuffers: 64,
    sealsInFlight: writes.chunksInFlightPerObject,
    maxFileSize: writes.maxFileSize,
    budget: new DirtyBudget(writes.dirtyBytes),
  };
}

interface Handle {
  /** Undefined for a directory opened for reading. */
  file: OpenFile | undefined;
  writable: boolean;
  append: boolean;
  /** The file's change count after this handle's last change: its flush checks they were committed. */
  changes: number;
  /** Reads, writes and commits through this descriptor, for the put/get metrics. */
  traffic: HandleTraffic;
}

/** What a shutdown did with the files open on the mount. */
export interface ShutdownReport {
  /** Files committed (their writers had closed or flushed them, or only attributes were pending). */
  committed: number;
  /** Files whose commit failed: their previous version is intact. */
  failed: string[];
  /** Files still open for writing whose uncommitted changes were dropped, as a crash would drop them. */
  left: string[];
}

/** What a name inside a bucket is right now. */
type Entry =
  | { kind: 'file' | 'symlink' | 'node'; record: ObjectRecord }
  | { kind: 'open'; file: OpenFile }
  | { kind: 'dir'; marker?: ObjectRecord };

const XATTR_PREFIX = 'user.';
const MAX_XATTR_VALUE = 64 * 1024;
/** statfs reports in 64 KiB blocks so that petabytes still fit fuse-native's 32-bit fields. */
const STATFS_BLOCK = 64 * 1024;
const STATFS_TTL_MS = 5_000;
/**
 * How long attributes learnt from a directory listing answer getattr. `ls -l`
 * asks for every entry right after readdir; the listing already carried them.
 * Counted from the end of the listing (a directory of 10,000 entries takes a
 * while to list, and `ls` stats them all afterwards). Every change made
 * through this mount clears it, a commit by any other process (the store's
 * generation moving: a watch on etcd) voids it, and open() drops its file
 * first (close-to-open); so it can outlast the kernel's 1 s attribute cache.
 */
const LISTED_ATTRS_MS = 5_000;
const LISTED_ATTRS_MAX = 100_000;

function fileKey(bucket: string, key: string): string {
  return `${bucket}\u0000${key}`;
}

/**
 * The filesystem: POSIX calls expressed as bucket and object operations on
 * the engine. Buckets are the root's folders; directories are key prefixes
 * with a marker object ("dir/") so empty ones exist. Open files are shared
 * per path (see OpenFile); a version becomes visible on flush, fsync or the
 * last release. Every method throws LilioError or ErrnoError; ops.ts turns
 * them into errno values.
 */
export class Vfs {
  private readonly files = new Map<string, OpenFile>();
  private readonly handles = new Map<number, Handle>();
  private nextFd = 1;
  /** Set by shutdown(): no new file is opened for writing. */
  private closing = false;
  private readonly started = Date.now();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  private statfsCache: { value: StatFs; at: number } | undefined;
  private readonly listedAttrs = new Map<string, { stat: Stat; listing: { at: number; generation: number } }>();
  private readonly dirTimes = new DirTimes();

  constructor(
    private readonly lilio: Lilio,
    private readonly options: VfsOptions,
  ) {}

  get openFiles(): number {
    return this.files.size;
  }

  /** Descriptors open on the mount, files and directories. */
  get openHandles(): number {
    return this.handles.size;
  }

  /** Paths (bucket/key) of the files some process holds open for writing. */
  openForWriting(): string[] {
    const paths = new Set<string>();
    for (const handle of this.handles.values()) {
      if (handle.writable && handle.file && !handle.file.unlinked)
        paths.add(`${handle.file.bucket}/${handle.file.key}`);
    }
    return [...paths];
  }

  // ---- attributes ----

  async getattr(path: string): Promise<Stat> {
    const where = parseMountPath(path);
    if (where.kind === 'root')
      return this.dirStat({ ...defaultAttrs(this.started, 'dir'), uid: this.uid, gid: this.gid });
    if (where.kind === 'bucket') {
      return this.dirStat(this.dirTimes.apply(where.bucket, '', (await this.lilio.getBucket(where.bucket)).attrs));
    }
    const key = fileKey(where.bucket, where.key);
    if (!this.files.has(key)) {
      const listed = this.listedAttrs.get(key);
      const listing = listed?.listing;
      if (listing && Date.now() - listing.at < LISTED_ATTRS_MS && listing.generation === this.lilio.meta.generation()) {
        return listed.stat;
      }
    }
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    return this.statOf(entry, where.bucket, where.key);
  }

  /** An open descriptor's view: its file may since have been replaced or unlinked at the path. */
  async fgetattr(path: string, fd: number): Promise<Stat> {
    const file = this.handles.get(fd)?.file;
    if (!file) return this.getattr(path);
    return this.fileStat(S_IFREG, file.attrs, file.size, file.allocated());
  }

  async readdir(path: string): Promise<string[]> {
    const where = parseMountPath(path);
    if (where.kind === 'root') return ['.', '..', ...(await this.lilio.listBuckets()).map((b) => b.name)];
    const prefix = where.kind === 'key' ? `${where.key}/` : '';
    if (where.kind === 'key') {
      const entry = await this.entry(where.bucket, where.key);
      if (!entry) throw new NotFoundError(`${path} does not exist`);
      if (entry.kind !== 'dir') throw new NotDirError(`${path} is not a directory`);
    }
    const names = new Set<string>();
    let startAfter: string | undefined;
    // The generation is taken before listing: anything committed after it, in any process, voids
    // what the listing carried. The time is set when the listing is complete.
    const listing = { at: Date.now(), generation: this.lilio.meta.generation() };
    do {
      const page = await this.lilio.list(where.bucket, { prefix, delimiter: '/', startAfter, limit: 1000 });
      for (const p of page.prefixes) names.add(p.slice(prefix.length, -1));
      if (this.listedAttrs.size > LISTED_ATTRS_MAX) this.listedAttrs.clear();
      for (const o of page.objects) {
        names.add(o.key.slice(prefix.length));
        if (o.kind !== 'dir') {
          const stat = this.fileStat(TYPE_BITS[o.kind], o.attrs, o.size, o.allocated);
          this.listedAttrs.set(fileKey(where.bucket, o.key), { stat, listing });
        }
      }
      startAfter = page.next;
    } while (startAfter);
    listing.at = Date.now();
    // Files created here but not committed yet exist too.
    for (const file of this.files.values()) {
      if (!file.base && !file.unlinked && file.bucket === where.bucket && parentPrefix(file.key) === prefix) {
        names.add(baseName(file.key));
      }
    }
    names.delete('');
    return ['.', '..', ...names];
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.setAttrs(path, { mode: mode & 0o7777 });
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    // -1 (as unsigned 32-bit) means "leave unchanged".
    const attrs: Partial<ObjectAttrs> = {};
    if (uid !== -1 && uid !== 0xffffffff) attrs.uid = uid;
    if (gid !== -1 && gid !== 0xffffffff) attrs.gid = gid;
    await this.setAttrs(path, attrs);
  }

  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    await this.setAttrs(path, { atimeMs, mtimeMs });
  }

  // ---- directories ----

  /** `caller`: who asks (the FUSE request's uid/gid); the mount's own user when not known. */
  async mkdir(path: string, mode: number, caller: Caller = this.self()): Promise<void> {
    this.writable();
    const where = parseMountPath(path);
    if (where.kind === 'root') throw new ErrnoError(Errno.EEXIST, '/ exists');
    const now = Date.now();
    if (where.kind === 'bucket') {
      const attrs = { ...defaultAttrs(now, 'dir'), ...newOwner(caller, undefined, mode, true) };
      await this.lilio.createBucket(where.bucket, { attrs });
      this.dirTimes.drop(where.bucket, '');
      return;
    }
    const parent = await this.requireParentDir(where.bucket, where.key);
    if (await this.entry(where.bucket, where.key)) throw new ErrnoError(Errno.EEXIST, `${path} exists`);
    const attrs = { ...defaultAttrs(now, 'dir'), ...newOwner(caller, parent, mode, true) };
    await this.writeMarker(where.bucket, where.key, attrs, 'absent');
    this.dirTimes.drop(where.bucket, where.key);
    this.dirTimes.stored(where.bucket, where.key, now);
    await this.entryChanged(where.bucket, where.key);
  }

  async rmdir(path: string): Promise<void> {
    this.writable();
    const where = parseMountPath(path);
    if (where.kind === 'root') throw new ErrnoError(Errno.EBUSY, 'cannot remove /');
    if (where.kind === 'bucket') {
      await this.lilio.deleteBucket(where.bucket);
      this.dirTimes.drop(where.bucket, '');
      return;
    }
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind !== 'dir') throw new NotDirError(`${path} is not a directory`);
    await this.requireEmptyDir(where.bucket, where.key);
    await this.keepParent(where.bucket, where.key);
    if (entry.marker) await this.lilio.deleteObject(where.bucket, `${where.key}/`);
    this.dirTimes.drop(where.bucket, where.key);
    await this.entryChanged(where.bucket, where.key);
  }

  // ---- files ----

  async create(path: string, mode: number, caller: Caller = this.self()): Promise<number> {
    this.writable();
    this.openingForWrite();
    const where = this.keyPath(path, Errno.EPERM);
    const parent = await this.requireParentDir(where.bucket, where.key);
    const existing = await this.entry(where.bucket, where.key);
    if (existing?.kind === 'dir') throw new IsDirError(`${path} is a directory`);
    if (existing) return this.open(path, constants.O_RDWR | O_TRUNC);
    const ctx = await this.lilio.bucket(where.bucket);
    const attrs = { ...defaultAttrs(), ...newOwner(caller, parent, mode, false) };
    const file = new OpenFile(this.lilio, ctx, where.bucket, where.key, undefined, attrs, this.options);
    file.changed();
    this.files.set(fileKey(where.bucket, where.key), file);
    const fd = this.addHandle(file, true, false);
    this.handle(fd).changes = file.changes;
    await this.entryChanged(where.bucket, where.key);
    return fd;
  }

  /**
   * mkfifo, mknod, bind(2) of a unix socket: an entry with a type and
   * attributes and no data (the kernel serves the node's I/O itself).
   */
  async mknod(
    path: string,
    kind: SpecialKind,
    mode: number,
    rdev: number,
    caller: Caller = this.self(),
  ): Promise<void> {
    this.writable();
    const where = this.keyPath(path, Errno.EPERM);
    const parent = await this.requireParentDir(where.bucket, where.key);
    if (await this.entry(where.bucket, where.key)) throw new ErrnoError(Errno.EEXIST, `${path} exists`);
    const attrs: Partial<ObjectAttrs> = newOwner(caller, parent, mode, false);
    if (kind === 'chardev' || kind === 'blockdev') attrs.rdev = rdev;
    const writer = await this.lilio.writer(where.bucket, where.key);
    await writer.commit({ kind, expect: 'absent', attrs });
    await this.entryChanged(where.bucket, where.key);
  }

  async open(path: string, flags: number): Promise<number> {
    const where = parseMountPath(path);
    if (where.kind === 'key') this.listedAttrs.delete(fileKey(where.bucket, where.key));
    const access = flags & O_ACCMODE;
    const writable = access !== O_RDONLY;
    if (writable) {
      this.writable();
      this.openingForWrite();
    }
    if (where.kind !== 'key') {
      if (writable) throw new IsDirError(`${path} is a directory`);
      return this.addHandle(undefined, false, false);
    }
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind === 'dir') {
      if (writable) throw new IsDirError(`${path} is a directory`);
      return this.addHandle(undefined, false, false);
    }
    // The kernel opens FIFOs, sockets and devices itself; one reaching us has no data to serve.
    if (entry.kind === 'node') throw new ErrnoError(Errno.ENXIO, `${path} is a ${entry.record.kind}`);
    let file: OpenFile;
    if (entry.kind === 'open') {
      file = entry.file;
    } else {
      const ctx = await this.lilio.bucket(where.bucket);
      file = new OpenFile(this.lilio, ctx, where.bucket, where.key, entry.record, entry.record.attrs, this.options);
      this.files.set(fileKey(where.bucket, where.key), file);
    }
    const fd = this.addHandle(file, writable, (flags & O_APPEND) !== 0);
    if (writable && flags & O_TRUNC && file.size > 0) {
      await file.truncate(0);
      this.handle(fd).changes = file.changes;
    }
    return fd;
  }

  async read(fd: number, target: Buffer, length: number, position: number): Promise<number> {
    const handle = this.handle(fd);
    if (!handle.file) throw new IsDirError('is a directory');
    try {
      const n = await handle.file.read(target, position, length);
      handle.traffic.read(n);
      return n;
    } catch (err) {
      handle.traffic.readError(err);
      throw err;
    }
  }

  async write(fd: number, data: Buffer, length: number, position: number): Promise<number> {
    const handle = this.handle(fd);
    if (!handle.file || !handle.writable) throw new ErrnoError(Errno.EBADF, 'not open for writing');
    handle.traffic.write();
    await handle.file.write(
      length === data.byteLength ? data : data.subarray(0, length),
      handle.append ? 'end' : position,
    );
    handle.changes = handle.file.changes;
    return length;
  }

  /**
   * close(2) of one descriptor: commit what the file holds, so close reports a failed write. A
   * descriptor open only for reading commits nothing: the file may be half-written by another
   * process. Changes of this descriptor that a failed commit dropped (another handle's flush)
   * are reported here, once.
   */
  async flush(fd: number): Promise<void> {
    this.listedAttrs.clear();
    const handle = this.handles.get(fd);
    const file = handle?.file;
    if (!file || !handle.writable) return;
    try {
      if (file.dirty) await handle.traffic.put(this.lilio.collector, file.bucket, () => file.commit());
      file.checkCommitted(handle.changes);
    } catch (err) {
      handle.changes = 0;
      throw err;
    }
  }

  async fsync(fd: number): Promise<void> {
    await this.flush(fd);
  }

  async release(fd: number): Promise<void> {
    this.listedAttrs.clear();
    const handle = this.handles.get(fd);
    if (!handle) return;
    this.handles.delete(fd);
    const file = handle.file;
    if (!file) return;
    handle.traffic.closed(this.lilio.collector, file.bucket, file.size);
    file.handles--;
    if (file.handles > 0) return;
    if (file.unlinked) {
      this.forget(file);
      await file.discard();
      return;
    }
    // Until its last commit lands the path is this file: an open meanwhile must join it, not
    // load the version being replaced and commit over this one. A change that arrives during the
    // commit (chmod, truncate by path) leaves it dirty: committed too, not dropped with the file.
    try {
      while (file.dirty && !file.unlinked && file.handles === 0) {
        await handle.traffic.put(this.lilio.collector, file.bucket, () => file.commit());
      }
      // Slices left by small writes are merged now that nobody writes; a failure only leaves them.
      if (file.handles === 0 && !file.unlinked) await file.compact().catch(() => undefined);
    } finally {
      if (file.handles === 0) this.forget(file);
    }
  }

  private forget(file: OpenFile): void {
    if (file.handles === 0) file.closed();
    if (this.files.get(fileKey(file.bucket, file.key)) === file) this.files.delete(fileKey(file.bucket, file.key));
  }

  async truncate(path: string, size: number): Promise<void> {
    this.writable();
    const where = this.keyPath(path, Errno.EISDIR);
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind === 'dir') throw new IsDirError(`${path} is a directory`);
    if (entry.kind === 'node') throw new ErrnoError(Errno.EINVAL, `${path} is a ${entry.record.kind}`);
    if (entry.kind === 'open') {
      await entry.file.truncate(size);
      // truncate(2) by path takes effect at once, like a local filesystem; a new file being
      // written is committed by its writer. (A file whose last handle is closing: here, or the
      // cut could land after its last commit and be dropped with it.)
      if (!entry.file.base && entry.file.handles > 0) return;
      await entry.file.commit();
      return;
    }
    const ctx = await this.lilio.bucket(where.bucket);
    const file = new OpenFile(this.lilio, ctx, where.bucket, where.key, entry.record, entry.record.attrs, this.options);
    try {
      await file.truncate(size);
      await file.commit();
    } finally {
      file.closed();
    }
  }

  async ftruncate(fd: number, size: number): Promise<void> {
    const handle = this.handle(fd);
    if (!handle.file || !handle.writable) throw new ErrnoError(Errno.EBADF, 'not open for writing');
    await handle.file.truncate(size);
    handle.changes = handle.file.changes;
  }

  /**
   * fallocate(2). Plain allocation (mode 0, or KEEP_SIZE) reserves nothing on
   * a store that writes chunks when data arrives: it only grows the size
   * where asked, as a hole. PUNCH_HOLE | KEEP_SIZE drops the range's data.
   */
  async fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
    const handle = this.handle(fd);
    if (!handle.file || !handle.writable) throw new ErrnoError(Errno.EBADF, 'not open for writing');
    if (offset < 0 || length <= 0) throw new ErrnoError(Errno.EINVAL, 'fallocate: bad range');
    const file = handle.file;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
      if (!(mode & FALLOC_FL_KEEP_SIZE)) throw new ErrnoError(Errno.EINVAL, 'PUNCH_HOLE needs KEEP_SIZE');
      await file.punchHole(offset, length);
      handle.changes = file.changes;
      return;
    }
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw new ErrnoError(Errno.ENOTSUP, `fallocate mode ${mode} is not supported`);
    if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + length > file.size) {
      await file.truncate(offset + length);
      handle.changes = file.changes;
    }
  }

  /** lseek(2) with SEEK_DATA (3) or SEEK_HOLE (4), answered from the chunk list; ENXIO past the data. */
  async lseek(fd: number, offset: number, whence: number): Promise<number> {
    const handle = this.handle(fd);
    if (!handle.file) throw new IsDirError('is a directory');
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new ErrnoError(Errno.EINVAL, `lseek whence ${whence}`);
    if (offset < 0) throw new ErrnoError(Errno.EINVAL, 'negative offset');
    const found = await handle.file.seek(offset, whence === SEEK_DATA ? 'data' : 'hole');
    if (found === undefined) throw new ErrnoError(Errno.ENXIO, 'no data past this offset');
    return found;
  }

  async unlink(path: string): Promise<void> {
    this.writable();
    const where = this.keyPath(path, Errno.EISDIR);
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind === 'dir') throw new IsDirError(`${path} is a directory`);
    await this.keepParent(where.bucket, where.key);
    const open = this.files.get(fileKey(where.bucket, where.key));
    if (open) {
      // Handles already open keep reading the version they have; nothing of theirs is committed
      // any more. The delete waits for a commit in flight, which would otherwise bring it back.
      this.files.delete(fileKey(where.bucket, where.key));
      await open.unlink(async (committed) => {
        if (committed) await this.lilio.deleteObject(where.bucket, where.key);
      });
      await this.entryChanged(where.bucket, where.key);
      return;
    }
    const removed = await this.lilio.deleteObject(where.bucket, where.key);
    if (!removed) throw new NotFoundError(`${path} does not exist`);
    await this.entryChanged(where.bucket, where.key);
  }

  async symlink(target: string, path: string, caller: Caller = this.self()): Promise<void> {
    this.writable();
    const where = this.keyPath(path, Errno.EPERM);
    const parent = await this.requireParentDir(where.bucket, where.key);
    if (await this.entry(where.bucket, where.key)) throw new ErrnoError(Errno.EEXIST, `${path} exists`);
    const writer = await this.lilio.writer(where.bucket, where.key);
    await writer.write(Buffer.from(target));
    await writer.commit({ kind: 'symlink', expect: 'absent', attrs: newOwner(caller, parent, 0o777, false) });
    await this.entryChanged(where.bucket, where.key);
  }

  async readlink(path: string): Promise<string> {
    const where = this.keyPath(path, Errno.EINVAL);
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind !== 'symlink') throw new ErrnoError(Errno.EINVAL, `${path} is not a symbolic link`);
    const reader = this.lilio.reader(await this.lilio.bucket(where.bucket), entry.record);
    const target = Buffer.alloc(entry.record.size);
    await reader.readInto(target, 0);
    return target.toString();
  }

  async link(): Promise<void> {
    // Hard links would need one chunk list shared by several keys with reference counts; not supported.
    throw new ErrnoError(Errno.EPERM, 'hard links are not supported');
  }

  // ---- rename ----

  /**
   * rename(2); `noReplace` is renameat2's RENAME_NOREPLACE: EEXIST when `to`
   * exists, decided by the store's commit for a file in the same bucket.
   */
  async rename(from: string, to: string, options: { noReplace?: boolean } = {}): Promise<void> {
    this.writable();
    const src = parseMountPath(from);
    const dest = parseMountPath(to);
    if (src.kind !== 'key' || dest.kind !== 'key') {
      throw new ErrnoError(Errno.EPERM, 'buckets cannot be renamed, and files cannot live at the root');
    }
    if (src.bucket === dest.bucket && src.key === dest.key) return;
    const source = await this.entry(src.bucket, src.key);
    if (!source) throw new NotFoundError(`${from} does not exist`);
    await this.requireParentDir(dest.bucket, dest.key);
    const target = await this.entry(dest.bucket, dest.key);
    if (target && options.noReplace) throw new ErrnoError(Errno.EEXIST, `${to} exists`);
    if (source.kind === 'dir') {
      if (dest.bucket === src.bucket && `${dest.key}/`.startsWith(`${src.key}/`)) {
        throw new ErrnoError(Errno.EINVAL, `cannot move ${from} into itself`);
      }
      if (target && target.kind !== 'dir') throw new NotDirError(`${to} is not a directory`);
      if (target) await this.requireEmptyDir(dest.bucket, dest.key);
      if (dest.bucket !== src.bucket) throw new ErrnoError(Errno.EXDEV, 'directories move between buckets by copy');
      await this.renameDir(src.bucket, src.key, dest.key, source.marker !== undefined);
      await this.changeCtime(() => this.lilio.meta.getObject(dest.bucket, `${dest.key}/`));
      await this.renamed(src, dest);
      return;
    }
    if (target?.kind === 'dir') throw new IsDirError(`${to} is a directory`);
    // What is written but not committed moves with the file: commit it first.
    const open = this.files.get(fileKey(src.bucket, src.key));
    if (open?.dirty) await open.commit();
    await this.keepParent(src.bucket, src.key);
    const replaced = this.files.get(fileKey(dest.bucket, dest.key));
    let moved: ObjectRecord | undefined;
    if (dest.bucket === src.bucket) {
      moved = await this.lilio.renameObject(src.bucket, src.key, dest.key, !options.noReplace);
    } else {
      await this.copyAcrossBuckets(src.bucket, src.key, dest.bucket, dest.key);
      await this.lilio.deleteObject(src.bucket, src.key);
    }
    if (replaced) {
      replaced.unlinked = true;
      this.files.delete(fileKey(dest.bucket, dest.key));
    }
    if (open && dest.bucket === src.bucket) {
      this.rekey(open, dest.bucket, dest.key);
      this.follow(moved);
    } else if (open) {
      open.unlinked = true;
      this.files.delete(fileKey(src.bucket, src.key));
    }
    if (moved) await this.changeCtime(moved);
    await this.renamed(src, dest);
  }

  /**
   * renameat2's RENAME_EXCHANGE: the two names swap what they hold, in one
   * metadata commit. For two non-directories in one bucket, on a store that
   * can swap (all of ours); anything else answers EINVAL, as a filesystem
   * without the flag does, and changes nothing.
   */
  async exchange(from: string, to: string): Promise<void> {
    this.writable();
    const src = parseMountPath(from);
    const dest = parseMountPath(to);
    if (src.kind !== 'key' || dest.kind !== 'key') throw new ErrnoError(Errno.EINVAL, 'buckets are not exchanged');
    if (!this.lilio.canExchange) {
      throw new ErrnoError(Errno.EINVAL, 'RENAME_EXCHANGE: this metadata store cannot swap two names in one commit');
    }
    if (src.bucket !== dest.bucket) throw new ErrnoError(Errno.EINVAL, 'RENAME_EXCHANGE across buckets');
    if (src.key === dest.key) return;
    const bucket = src.bucket;
    const [a, b] = await Promise.all([this.entry(bucket, src.key), this.entry(bucket, dest.key)]);
    if (!a) throw new NotFoundError(`${from} does not exist`);
    if (!b) throw new NotFoundError(`${to} does not exist`);
    if (a.kind === 'dir' || b.kind === 'dir') throw new ErrnoError(Errno.EINVAL, 'directories are not exchanged');
    // What is written but not committed moves with each file: commit it first.
    const openA = this.files.get(fileKey(bucket, src.key));
    const openB = this.files.get(fileKey(bucket, dest.key));
    if (openA?.dirty) await openA.commit();
    if (openB?.dirty) await openB.commit();
    const [atA, atB] = await this.lilio.exchangeObjects(bucket, src.key, dest.key);
    this.files.delete(fileKey(bucket, src.key));
    this.files.delete(fileKey(bucket, dest.key));
    for (const [file, key] of [
      [openA, dest.key],
      [openB, src.key],
    ] as const) {
      if (!file) continue;
      file.key = key;
      if (file.base) file.base = { ...file.base, key };
      this.files.set(fileKey(bucket, key), file);
    }
    this.follow(atA);
    this.follow(atB);
    await this.changeCtime(atA);
    await this.changeCtime(atB);
    await this.renamed(src, dest);
  }

  /** Both directories of a rename changed. */
  private async renamed(src: { bucket: string; key: string }, dest: { bucket: string; key: string }): Promise<void> {
    await this.entryChanged(src.bucket, src.key);
    await this.entryChanged(dest.bucket, dest.key);
  }

  /**
   * A rename changes the moved file's ctime (as Linux filesystems do); the
   * store's rename moves the record unchanged, so the time is a second
   * commit, of the same chunks (nothing to clean up if it fails). The rename
   * is done by then: a commit that lost to a concurrent one, or failed, only
   * leaves the old ctime, and is not worth reporting the rename as failed.
   */
  private async changeCtime(record: ObjectRecord | (() => Promise<ObjectRecord | undefined>)): Promise<void> {
    try {
      const current = typeof record === 'function' ? await record() : record;
      if (!current) return;
      const { version, ...draft } = current;
      this.follow(
        await this.lilio.commitRecord({ ...draft, attrs: { ...current.attrs, ctimeMs: Date.now() } }, { version }),
      );
    } catch {
      // See above: the old ctime stays.
    }
  }

  // ---- filesystem ----

  async statfs(): Promise<StatFs> {
    const now = Date.now();
    if (this.statfsCache && now - this.statfsCache.at < STATFS_TTL_MS) return this.statfsCache.value;
    const { totalBytes, freeBytes } = await this.lilio.capacity();
    const blocks = Math.min(0xffffffff, Math.floor(totalBytes / STATFS_BLOCK));
    const bfree = Math.min(blocks, Math.floor(freeBytes / STATFS_BLOCK));
    const value: StatFs = {
      bsize: STATFS_BLOCK,
      frsize: STATFS_BLOCK,
      blocks,
      bfree,
      bavail: bfree,
      files: 0xffffffff,
      ffree: 0xffffffff - 1,
      favail: 0xffffffff - 1,
      fsid: 0,
      flag: this.options.readOnly ? 1 : 0,
      namemax: 255,
    };
    this.statfsCache = { value, at: now };
    return value;
  }

  // ---- extended attributes (user.* only) ----

  async setxattr(path: string, name: string, value: Buffer): Promise<void> {
    this.writable();
    if (!name.startsWith(XATTR_PREFIX))
      throw new ErrnoError(Errno.ENOTSUP, `only ${XATTR_PREFIX}* attributes are stored`);
    if (value.byteLength > MAX_XATTR_VALUE) throw new ErrnoError(Errno.E2BIG, 'attribute value too large');
    const where = this.keyPath(path, Errno.ENOTSUP);
    const stored = sealXattr(await this.lilio.bucket(where.bucket), name, value);
    await this.updateXattrs(path, (xattrs) => ({ ...xattrs, [name]: stored }));
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    // Only user.* names are ever stored. The kernel asks for security.capability before
    // every write(2): answering without a lookup keeps that off the write path.
    if (!name.startsWith(XATTR_PREFIX)) throw new ErrnoError(Errno.ENODATA, `no attribute ${name}`);
    const xattrs = await this.xattrsOf(path);
    const value = xattrs?.[name];
    if (value === undefined) throw new ErrnoError(Errno.ENODATA, `no attribute ${name}`);
    // xattrsOf found it, so the path is a key inside a bucket.
    const where = this.keyPath(path, Errno.ENODATA);
    return openXattr(await this.lilio.bucket(where.bucket), name, value);
  }

  async listxattr(path: string): Promise<string[]> {
    return Object.keys((await this.xattrsOf(path)) ?? {});
  }

  async removexattr(path: string, name: string): Promise<void> {
    this.writable();
    await this.updateXattrs(path, (xattrs) => {
      if (!xattrs || !(name in xattrs)) throw new ErrnoError(Errno.ENODATA, `no attribute ${name}`);
      const { [name]: _removed, ...rest } = xattrs;
      return Object.keys(rest).length > 0 ? rest : undefined;
    });
  }

  /**
   * Unmount, SIGTERM: what a crash would leave for the files still open for writing (their last
   * committed version; their uncommitted changes dropped, their writers' next call fails with
   * EIO), and everything else committed: files whose writers closed or flushed them (a commit in
   * flight is waited for) and pending attribute changes. No file is opened for writing afterwards.
   */
  async shutdown(): Promise<ShutdownReport> {
    this.closing = true;
    this.listedAttrs.clear();
    const report: ShutdownReport = { committed: 0, failed: [], left: [] };
    const writing = new Set<OpenFile>();
    for (const handle of this.handles.values()) if (handle.writable && handle.file) writing.add(handle.file);
    const reason = new ErrnoError(
      Errno.EIO,
      'the mount shut down while this file was open for writing: its uncommitted changes were dropped',
    );
    for (const file of new Set([...this.files.values(), ...writing])) {
      const path = `${file.bucket}/${file.key}`;
      if (file.unlinked) continue;
      if (writing.has(file)) {
        if (this.files.get(fileKey(file.bucket, file.key)) === file) this.files.delete(fileKey(file.bucket, file.key));
        if (await file.abandon(reason)) report.left.push(path);
        continue;
      }
      if (!file.dirty) continue;
      try {
        while (file.dirty && !file.unlinked) await file.commit();
        report.committed++;
      } catch {
        report.failed.push(path);
      }
    }
    return report;
  }

  // ---- internals ----

  private writable(): void {
    if (this.options.readOnly) throw new ReadOnlyError('the mount is read-only');
    this.listedAttrs.clear();
  }

  /** A new descriptor that may write: refused once shutdown began. */
  private openingForWrite(): void {
    if (this.closing) throw new ErrnoError(Errno.EIO, 'the mount is shutting down');
  }

  private keyPath(path: string, errnoAtTop: number): { bucket: string; key: string } {
    const where: MountPath = parseMountPath(path);
    if (where.kind !== 'key') throw new ErrnoError(errnoAtTop, `${path} is not a file inside a bucket`);
    return where;
  }

  private handle(fd: number): Handle {
    const handle = this.handles.get(fd);
    if (!handle) throw new ErrnoError(Errno.EBADF, `bad file handle ${fd}`);
    return handle;
  }

  private addHandle(file: OpenFile | undefined, writable: boolean, append: boolean): number {
    const fd = this.nextFd++;
    if (file) file.handles++;
    this.handles.set(fd, { file, writable, append, changes: 0, traffic: new HandleTraffic() });
    return fd;
  }

  /** The entry at bucket/key: an open file of this mount, a committed object, or a directory. */
  private async entry(bucket: string, key: string): Promise<Entry | undefined> {
    const open = this.files.get(fileKey(bucket, key));
    if (open && !open.unlinked && (open.dirty || !open.base)) return { kind: 'open', file: open };
    const meta = this.lilio.meta;
    await this.lilio.bucket(bucket);
    const found = meta.lookup ? await meta.lookup(bucket, key) : undefined;
    const record = found ? found.record : await meta.getObject(bucket, key);
    if (open && !open.unlinked) {
      // Nothing is pending on it here, and it stays the path only until another process commits
      // a new version: then its handles keep the version they opened and the path moves on
      // (close-to-open), instead of every later open joining the old one.
      if (record?.versionId === open.base!.versionId) return { kind: 'open', file: open };
      this.files.delete(fileKey(bucket, key));
    }
    if (record) {
      if (record.kind === 'symlink') return { kind: 'symlink', record };
      return isSpecialKind(record.kind) ? { kind: 'node', record } : { kind: 'file', record };
    }
    const marker = found ? found.marker : await meta.getObject(bucket, `${key}/`);
    if (marker) return { kind: 'dir', marker };
    if (found) return found.dir ? { kind: 'dir' } : undefined;
    const below = await meta.list(bucket, { prefix: `${key}/`, limit: 1 });
    if (below.objects.length > 0 || below.prefixes.length > 0) return { kind: 'dir' };
    return undefined;
  }

  private statOf(entry: Entry, bucket: string, key: string): Stat {
    if (entry.kind === 'dir') {
      const attrs = entry.marker?.attrs ?? { ...defaultAttrs(this.started, 'dir'), uid: this.uid, gid: this.gid };
      return this.dirStat(this.dirTimes.apply(bucket, key, attrs));
    }
    if (entry.kind === 'open') {
      return this.fileStat(S_IFREG, entry.file.attrs, entry.file.size, entry.file.allocated());
    }
    const record = entry.record;
    return this.fileStat(TYPE_BITS[record.kind], record.attrs, record.size, record.allocated);
  }

  private dirStat(attrs: ObjectAttrs): Stat {
    return {
      mode: S_IFDIR | (attrs.mode & 0o7777),
      uid: attrs.uid,
      gid: attrs.gid,
      size: 4096,
      nlink: 2,
      blocks: 8,
      blksize: 4096,
      atime: attrs.atimeMs,
      mtime: attrs.mtimeMs,
      ctime: attrs.ctimeMs,
    };
  }

  /** `allocated`: bytes stored, when less than the size (sparse files), so `du` counts data only. */
  private fileStat(type: number, attrs: ObjectAttrs, size: number, allocated = size): Stat {
    return {
      mode: type | (attrs.mode & 0o7777),
      uid: attrs.uid,
      gid: attrs.gid,
      size,
      nlink: 1,
      blocks: Math.ceil(Math.min(size, allocated) / 512),
      // cp and friends size their buffers by st_blksize: one chunk at a time suits us.
      blksize: 1024 * 1024,
      atime: attrs.atimeMs,
      mtime: attrs.mtimeMs,
      ctime: attrs.ctimeMs,
      ...(attrs.rdev ? { rdev: attrs.rdev } : {}),
    };
  }

  /** The mount's own user: the owner of what is created when the caller is not known (fuse-native). */
  private self(): Caller {
    return { uid: this.uid, gid: this.gid };
  }

  /** Checks that key's directory exists; returns its attributes when it has a record (setgid inheritance). */
  private async requireParentDir(bucket: string, key: string): Promise<ObjectAttrs | undefined> {
    const slash = key.lastIndexOf('/');
    if (slash < 0) return (await this.lilio.bucket(bucket)).record.attrs;
    const parent = await this.entry(bucket, key.slice(0, slash));
    if (!parent) throw new NotFoundError(`${bucket}/${key.slice(0, slash)} does not exist`);
    if (parent.kind !== 'dir') throw new NotDirError(`${bucket}/${key.slice(0, slash)} is not a directory`);
    return parent.marker?.attrs;
  }

  /**
   * An entry was created, removed or renamed in key's directory: its mtime
   * and ctime move (see DirTimes for what is stored, and when).
   */
  private async entryChanged(bucket: string, key: string): Promise<void> {
    const slash = key.lastIndexOf('/');
    const dir = slash < 0 ? '' : key.slice(0, slash);
    const at = this.dirTimes.touch(bucket, dir);
    if (at === undefined) return;
    try {
      if (dir === '') {
        await this.lilio.updateBucketAttrs(bucket, { mtimeMs: at });
        return;
      }
      const marker = await this.lilio.meta.getObject(bucket, `${dir}/`);
      if (!marker) return; // implicit: its times live in this process only
      const { version, ...draft } = marker;
      await this.lilio.commitRecord({ ...draft, attrs: { ...marker.attrs, mtimeMs: at, ctimeMs: at } }, { version });
    } catch {
      // The change itself is done; its directory's stored time is not worth failing it for (the
      // directory was removed or rewritten meanwhile, or the store failed). This process still
      // shows the time.
    }
  }

  private async requireEmptyDir(bucket: string, key: string): Promise<void> {
    const prefix = `${key}/`;
    const page = await this.lilio.list(bucket, { prefix, delimiter: '/', limit: 1 });
    const pending = [...this.files.values()].some((f) => !f.base && f.bucket === bucket && f.key.startsWith(prefix));
    if (page.objects.length > 0 || page.prefixes.length > 0 || pending) {
      throw new NotEmptyError(`${bucket}/${key} is not empty`);
    }
  }

  /**
   * A directory that exists only because keys lie below it (no marker) would
   * vanish with its last entry; POSIX directories do not, so it gets a marker first.
   */
  private async keepParent(bucket: string, key: string): Promise<void> {
    const slash = key.lastIndexOf('/');
    if (slash < 0) return;
    const parent = key.slice(0, slash);
    if (await this.lilio.meta.getObject(bucket, `${parent}/`)) return;
    await this.writeMarker(
      bucket,
      parent,
      { ...defaultAttrs(this.started, 'dir'), uid: this.uid, gid: this.gid },
      'any',
    );
  }

  private async writeMarker(bucket: string, key: string, attrs: ObjectAttrs, expect: 'absent' | 'any'): Promise<void> {
    const writer = await this.lilio.writer(bucket, `${key}/`);
    await writer.commit({ kind: 'dir', attrs, expect });
  }

  private async setAttrs(path: string, attrs: Partial<ObjectAttrs>): Promise<void> {
    this.writable();
    const where = parseMountPath(path);
    if (where.kind === 'root') throw new ErrnoError(Errno.EPERM, 'the root has fixed attributes');
    if (where.kind === 'bucket') {
      await this.lilio.updateBucketAttrs(where.bucket, this.withDirTimes(where.bucket, '', attrs));
      return;
    }
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind === 'open') {
      // With unwritten data pending, the attributes go with the next flush; otherwise they commit now.
      const clean = !entry.file.dirty;
      entry.file.setAttrs(attrs);
      if (clean && entry.file.base) await entry.file.commit();
      return;
    }
    if (entry.kind === 'dir') {
      const current = entry.marker?.attrs ?? { ...defaultAttrs(this.started, 'dir'), uid: this.uid, gid: this.gid };
      const changed = this.withDirTimes(where.bucket, where.key, attrs);
      await this.writeMarker(where.bucket, where.key, { ...current, ...changed, ctimeMs: Date.now() }, 'any');
      return;
    }
    const { version: _v, ...draft } = entry.record;
    await this.lilio.commitRecord(
      { ...draft, attrs: { ...entry.record.attrs, ...attrs, ctimeMs: Date.now() } },
      { version: entry.record.version },
    );
  }

  /**
   * A directory's attributes are being stored: times asked for replace the
   * in-process overlay; otherwise the overlay's newer times go with them.
   */
  private withDirTimes(bucket: string, dirKey: string, attrs: Partial<ObjectAttrs>): Partial<ObjectAttrs> {
    if (attrs.mtimeMs !== undefined || attrs.atimeMs !== undefined) {
      this.dirTimes.drop(bucket, dirKey);
      return attrs;
    }
    const zero = { mode: 0, uid: 0, gid: 0, atimeMs: 0, mtimeMs: 0, ctimeMs: 0 };
    const overlay = this.dirTimes.apply(bucket, dirKey, zero);
    return overlay.mtimeMs > 0 ? { ...attrs, mtimeMs: overlay.mtimeMs } : attrs;
  }

  private async xattrsOf(path: string): Promise<Record<string, string> | undefined> {
    const where = parseMountPath(path);
    if (where.kind !== 'key') return undefined;
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind === 'open') return entry.file.xattrs;
    if (entry.kind === 'dir') return entry.marker?.xattrs;
    return entry.record.xattrs;
  }

  private async updateXattrs(
    path: string,
    update: (current: Record<string, string> | undefined) => Record<string, string> | undefined,
  ): Promise<void> {
    const where = this.keyPath(path, Errno.ENOTSUP);
    const entry = await this.entry(where.bucket, where.key);
    if (!entry) throw new NotFoundError(`${path} does not exist`);
    if (entry.kind === 'open') {
      entry.file.setXattrs(update(entry.file.xattrs));
      return;
    }
    let record = entry.kind === 'dir' ? entry.marker : entry.record;
    if (!record) {
      await this.keepMarker(where.bucket, where.key);
      record = (await this.lilio.meta.getObject(where.bucket, `${where.key}/`))!;
    }
    const { version, ...draft } = record;
    const xattrs = update(record.xattrs);
    const next = { ...draft, attrs: { ...record.attrs, ctimeMs: Date.now() } };
    if (xattrs) next.xattrs = xattrs;
    else delete next.xattrs;
    await this.lilio.commitRecord(next, { version });
  }

  private async keepMarker(bucket: string, key: string): Promise<void> {
    await this.writeMarker(bucket, key, { ...defaultAttrs(this.started, 'dir'), uid: this.uid, gid: this.gid }, 'any');
  }

  private async renameDir(bucket: string, from: string, to: string, hasMarker: boolean): Promise<void> {
    const fromPrefix = `${from}/`;
    const toPrefix = `${to}/`;
    // Files written below the directory move with it: commit them first.
    for (const file of this.files.values()) {
      if (file.bucket === bucket && file.key.startsWith(fromPrefix) && file.dirty) await file.commit();
    }
    await this.keepParent(bucket, from);
    if (!hasMarker) await this.keepMarker(bucket, from);
    await this.lilio.renamePrefix(bucket, fromPrefix, toPrefix);
    for (const file of [...this.files.values()]) {
      if (file.bucket === bucket && file.key.startsWith(fromPrefix)) {
        this.rekey(file, bucket, toPrefix + file.key.slice(fromPrefix.length));
        if (file.base) this.follow(await this.lilio.meta.getObject(bucket, file.key));
      }
    }
  }

  /**
   * A version this mount moved or re-stamped (rename, exchange, a rename's
   * ctime) is still the content an open file there builds on: the file
   * commits over the new version number, not into a conflict with itself.
   */
  private follow(record: ObjectRecord | undefined): void {
    if (!record) return;
    const file = this.files.get(fileKey(record.bucket, record.key));
    if (file?.base?.versionId !== record.versionId) return;
    file.base = { ...file.base, bucket: record.bucket, key: record.key, version: record.version };
  }

  private rekey(file: OpenFile, bucket: string, key: string): void {
    this.files.delete(fileKey(file.bucket, file.key));
    file.bucket = bucket;
    file.key = key;
    if (file.base) file.base = { ...file.base, bucket, key };
    this.files.set(fileKey(bucket, key), file);
  }

  /** Files move between buckets by copy: each bucket has its own encryption key. */
  private async copyAcrossBuckets(fromBucket: string, fromKey: string, toBucket: string, toKey: string): Promise<void> {
    const record = await this.lilio.headObject(fromBucket, fromKey);
    const from = await this.lilio.bucket(fromBucket);
    const reader = this.lilio.reader(from, record);
    const writer = await this.lilio.writer(toBucket, toKey);
    const xattrs = resealXattrs(from, await this.lilio.bucket(toBucket), record.xattrs);
    try {
      for await (const piece of reader.stream()) await writer.write(piece);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    await writer.commit({ kind: record.kind, attrs: record.attrs, xattrs, expect: 'any' });
  }
}

export function isNotFound(err: unknown): boolean {
  return hasCode(err, 'NOT_FOUND');
}
