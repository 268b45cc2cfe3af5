/**
 * scripts/bench/memfs.ts: the ceiling row of scripts/bench-mount.
 *
 * A minimal in-memory FUSE filesystem on fuse-native, doing as little as a
 * Node FUSE filesystem can: no I/O, no hashing, no copies beyond the one that
 * takes a write's bytes out of libfuse's buffer. Whatever Lilio's mount costs
 * above this is Lilio's; below it is the price of FUSE + fuse-native + Node.
 *
 *   node --import tsx scripts/bench/memfs.ts MOUNTPOINT
 *
 *   node --import tsx scripts/bench/memfs.ts MOUNTPOINT [--prealloc-mib N]
 *
 * Prints "ready" on stdout once mounted, unmounts on SIGTERM/SIGINT, and on
 * SIGUSR2 prints one line `stats {json}` (op counts and sizes since the last
 * such line) so the harness can tell how large the kernel's writes were.
 *
 * --prealloc-mib N touches N MiB of memory before mounting and stores written
 * bytes there. On a VM whose fresh pages are expensive to fault in (here about
 * 0.75 ms per MiB, i.e. ~1.3 GB/s, getting worse past ~1 GiB), storing writes
 * in freshly allocated Buffers measures the hypervisor, not FUSE; with the
 * arena the ceiling is what FUSE + fuse-native + Node alone allow.
 */
import { createRequire } from 'node:module';

type Cb = (code: number, ...values: unknown[]) => void;

interface StatLike {
  mode: number;
  size: number;
  uid: number;
  gid: number;
  nlink: number;
  blksize: number;
  blocks: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
}

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
}

interface FuseClass {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  ENOENT: number;
  EEXIST: number;
  ENOTDIR: number;
  EISDIR: number;
  ENOTEMPTY: number;
  EINVAL: number;
}

const require = createRequire(import.meta.url);
const Fuse = require('fuse-native') as FuseClass;

/** Bump allocator over pre-touched slabs; falls back to fresh Buffers when exhausted. */
const SLAB = 64 * 1024 * 1024;
const slabs: Buffer[] = [];
let slabUsed = SLAB;
function prealloc(mib: number): void {
  for (let left = mib * 1024 * 1024; left > 0; left -= SLAB) slabs.push(Buffer.allocUnsafeSlow(SLAB).fill(0));
  slabUsed = 0;
}
function storage(len: number): Buffer {
  if (slabs.length > 0) {
    if (slabUsed + len > SLAB) {
      slabs.shift();
      slabUsed = 0;
    }
    const slab = slabs[0];
    if (slab && len <= SLAB) {
      slabUsed += len;
      return slab.subarray(slabUsed - len, slabUsed);
    }
  }
  return Buffer.allocUnsafe(len);
}

/**
 * fuse-native has no option for big_writes/max_write, so without them the
 * kernel splits every write into 4 KiB requests. libfuse 2 caps max_write at
 * 128 KiB whatever we ask for (it does not negotiate max_pages).
 */
class BigWriteFuse extends Fuse {
  override _fuseOptions(): string {
    const base = super._fuseOptions();
    const extra = 'big_writes,max_write=1048576';
    return base ? `${base},${extra}` : `-o${extra}`;
  }
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFMT = 0o170000;

interface FileNode {
  kind: 'file';
  mode: number;
  /** Appended pieces; starts[i] is the file offset where chunks[i] begins. */
  chunks: Buffer[];
  starts: number[];
  size: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
}
interface DirNode {
  kind: 'dir';
  mode: number;
  children: Set<string>;
  atime: Date;
  mtime: Date;
  ctime: Date;
}
type Node = FileNode | DirNode;

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
const nodes = new Map<string, Node>();

function newDir(mode: number): DirNode {
  const now = new Date();
  return { kind: 'dir', mode: S_IFDIR | (mode & 0o7777), children: new Set(), atime: now, mtime: now, ctime: now };
}
function newFile(mode: number): FileNode {
  const now = new Date();
  return {
    kind: 'file',
    mode: S_IFREG | (mode & 0o7777),
    chunks: [],
    starts: [],
    size: 0,
    atime: now,
    mtime: now,
    ctime: now,
  };
}
nodes.set('/', newDir(0o755));

function split(path: string): [string, string] {
  const i = path.lastIndexOf('/');
  return [i === 0 ? '/' : path.slice(0, i), path.slice(i + 1)];
}

/** The parent directory of path, or an errno. */
function parentOf(path: string): DirNode | number {
  const parent = nodes.get(split(path)[0]);
  if (!parent) return Fuse.ENOENT;
  if (parent.kind !== 'dir') return Fuse.ENOTDIR;
  return parent;
}

function statOf(node: Node): StatLike {
  const size = node.kind === 'file' ? node.size : 4096;
  return {
    mode: node.mode,
    size,
    uid,
    gid,
    nlink: node.kind === 'dir' ? 2 : 1,
    blksize: 4096,
    blocks: Math.ceil(size / 512),
    atime: node.atime,
    mtime: node.mtime,
    ctime: node.ctime,
  };
}

/** Replaces a file's pieces by one buffer: only for the rare non-append write or a shrinking truncate. */
function flatten(file: FileNode): Buffer {
  const flat = file.chunks.length === 1 ? file.chunks[0]! : Buffer.concat(file.chunks, file.size);
  file.chunks = [flat];
  file.starts = [0];
  return flat;
}

function setSize(file: FileNode, size: number): void {
  if (size === file.size) return;
  if (size > file.size) {
    file.starts.push(file.size);
    file.chunks.push(Buffer.alloc(size - file.size));
  } else if (size === 0) {
    file.chunks = [];
    file.starts = [];
  } else {
    const flat = flatten(file).subarray(0, size);
    file.chunks = [Buffer.from(flat)];
  }
  file.size = size;
  file.mtime = file.ctime = new Date();
}

/** Index of the piece holding offset (offset < size). */
function pieceAt(file: FileNode, offset: number): number {
  let lo = 0;
  let hi = file.starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (file.starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const stats = { writes: 0, writeBytes: 0, maxWrite: 0, reads: 0, readBytes: 0, maxRead: 0, ops: 0 };
function resetStats(): void {
  for (const k of Object.keys(stats) as (keyof typeof stats)[]) stats[k] = 0;
}

let nextFd = 1;

const ops = {
  statfs(_path: string, cb: Cb) {
    stats.ops++;
    cb(0, {
      bsize: 4096,
      frsize: 4096,
      blocks: 0x3fffffff,
      bfree: 0x3fffffff,
      bavail: 0x3fffffff,
      files: 0x3fffffff,
      ffree: 0x3fffffff,
      favail: 0x3fffffff,
      fsid: 0,
      flag: 0,
      namemax: 255,
    });
  },
  getattr(path: string, cb: Cb) {
    stats.ops++;
    const node = nodes.get(path);
    if (!node) return cb(Fuse.ENOENT);
    cb(0, statOf(node));
  },
  readdir(path: string, cb: Cb) {
    stats.ops++;
    const node = nodes.get(path);
    if (!node) return cb(Fuse.ENOENT);
    if (node.kind !== 'dir') return cb(Fuse.ENOTDIR);
    cb(0, [...node.children]);
  },
  mkdir(path: string, mode: number, cb: Cb) {
    stats.ops++;
    if (nodes.has(path)) return cb(Fuse.EEXIST);
    const parent = parentOf(path);
    if (typeof parent === 'number') return cb(parent);
    nodes.set(path, newDir(mode));
    parent.children.add(split(path)[1]);
    parent.mtime = parent.ctime = new Date();
    cb(0);
  },
  rmdir(path: string, cb: Cb) {
    stats.ops++;
    const node = nodes.get(path);
    if (!node) return cb(Fuse.ENOENT);
    if (node.kind !== 'dir') return cb(Fuse.ENOTDIR);
    if (node.children.size > 0) return cb(Fuse.ENOTEMPTY);
    const parent = parentOf(path);
    if (typeof parent === 'number') return cb(parent);
    nodes.delete(path);
    parent.children.delete(split(path)[1]);
    parent.mtime = parent.ctime = new Date();
    cb(0);
  },
  create(path: string, mode: number, cb: Cb) {
    stats.ops++;
    const existing = nodes.get(path);
    if (existing) {
      if (existing.kind === 'dir') return cb(Fuse.EISDIR);
      return cb(0, nextFd++);
    }
    const parent = parentOf(path);
    if (typeof parent === 'number') return cb(parent);
    nodes.set(path, newFile(mode));
    parent.children.add(split(path)[1]);
    parent.mtime = parent.ctime = new Date();
    cb(0, nextFd++);
  },
  open(path: string, _flags: number, cb: Cb) {
    stats.ops++;
    if (!nodes.has(path)) return cb(Fuse.ENOENT);
    cb(0, nextFd++);
  },
  release(_path: string, _fd: number, cb: Cb) {
    stats.ops++;
    cb(0);
  },
  flush(_path: string, _fd: number, cb: Cb) {
    stats.ops++;
    cb(0);
  },
  fsync(_path: string, _datasync: number, _fd: number, cb: Cb) {
    stats.ops++;
    cb(0);
  },
  read(path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
    stats.ops++;
    const file = nodes.get(path);
    if (!file) return cb(Fuse.ENOENT);
    if (file.kind !== 'file') return cb(Fuse.EISDIR);
    stats.reads++;
    if (len > stats.maxRead) stats.maxRead = len;
    const end = Math.min(file.size, pos + len);
    let done = 0;
    if (pos < end) {
      let i = pieceAt(file, pos);
      let at = pos;
      while (at < end) {
        const piece = file.chunks[i]!;
        const from = at - file.starts[i]!;
        const n = Math.min(piece.length - from, end - at);
        piece.copy(buf, done, from, from + n);
        done += n;
        at += n;
        i++;
      }
    }
    stats.readBytes += done;
    cb(done);
  },
  write(path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
    stats.ops++;
    const file = nodes.get(path);
    if (!file) return cb(Fuse.ENOENT);
    if (file.kind !== 'file') return cb(Fuse.EISDIR);
    stats.writes++;
    stats.writeBytes += len;
    if (len > stats.maxWrite) stats.maxWrite = len;
    // libfuse's buffer is detached once we answer: copy the bytes out.
    const copy = storage(len);
    buf.copy(copy, 0, 0, len);
    if (pos === file.size) {
      file.starts.push(pos);
      file.chunks.push(copy);
      file.size += len;
    } else {
      if (pos + len > file.size) setSize(file, pos + len);
      copy.copy(flatten(file), pos);
    }
    file.mtime = file.ctime = new Date();
    cb(len);
  },
  truncate(path: string, size: number, cb: Cb) {
    stats.ops++;
    const file = nodes.get(path);
    if (!file) return cb(Fuse.ENOENT);
    if (file.kind !== 'file') return cb(Fuse.EISDIR);
    setSize(file, size);
    cb(0);
  },
  ftruncate(path: string, _fd: number, size: number, cb: Cb) {
    ops.truncate(path, size, cb);
  },
  unlink(path: string, cb: Cb) {
    stats.ops++;
    const node = nodes.get(path);
    if (!node) return cb(Fuse.ENOENT);
    if (node.kind === 'dir') return cb(Fuse.EISDIR);
    const parent = parentOf(path);
    if (typeof parent === 'number') return cb(parent);
    nodes.delete(path);
    parent.children.delete(split(path)[1]);
    parent.mtime = parent.ctime = new Date();
    cb(0);
  },
  rename(src: string, dest: string, cb: Cb) {
    stats.ops++;
    const node = nodes.get(src);
    if (!node) return cb(Fuse.ENOENT);
    const from = parentOf(src);
    const to = parentOf(dest);
    if (typeof from === 'number') return cb(from);
    if (typeof to === 'number') return cb(to);
    if (dest.startsWith(`${src}/`)) return cb(Fuse.EINVAL);
    const target = nodes.get(dest);
    if (target) {
      if (target.kind === 'dir' && node.kind !== 'dir') return cb(Fuse.EISDIR);
      if (target.kind !== 'dir' && node.kind === 'dir') return cb(Fuse.ENOTDIR);
      if (target.kind === 'dir' && target.children.size > 0) return cb(Fuse.ENOTEMPTY);
    }
    nodes.delete(src);
    nodes.set(dest, node);
    if (node.kind === 'dir') {
      for (const [p, n] of [...nodes]) {
        if (p.startsWith(`${src}/`)) {
          nodes.delete(p);
          nodes.set(dest + p.slice(src.length), n);
        }
      }
    }
    from.children.delete(split(src)[1]);
    to.children.add(split(dest)[1]);
    const now = new Date();
    from.mtime = from.ctime = to.mtime = to.ctime = node.ctime = now;
    cb(0);
  },
  chmod(path: string, mode: number, cb: Cb) {
    stats.ops++;
    const node = nodes.get(path);
    if (!node) return cb(Fuse.ENOENT);
    node.mode = (node.mode & S_IFMT) | (mode & 0o7777);
    node.ctime = new Date();
    cb(0);
  },
  chown(path: string, _uid: number, _gid: number, cb: Cb) {
    stats.ops++;
    cb(nodes.has(path) ? 0 : Fuse.ENOENT);
  },
  utimens(path: string, atime: number, mtime: number, cb: Cb) {
    stats.ops++;
    const node = nodes.get(path);
    if (!node) return cb(Fuse.ENOENT);
    node.atime = new Date(atime);
    node.mtime = new Date(mtime);
    node.ctime = new Date();
    cb(0);
  },
};

function main(): void {
  const [mnt, flag, value] = process.argv.slice(2);
  if (!mnt || (flag !== undefined && (flag !== '--prealloc-mib' || !/^\d+$/.test(value ?? '')))) {
    process.stderr.write('usage: memfs.ts MOUNTPOINT [--prealloc-mib N]\n');
    process.exit(64);
  }
  if (value) prealloc(Number(value));
  const fuse = new BigWriteFuse(mnt, ops, {
    timeout: false,
    force: true,
    mkdir: true,
    fsname: 'memfs',
    // Like a real filesystem: the kernel may cache entries and attributes for 1 s.
    attrTimeout: 1,
    entryTimeout: 1,
  });
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(`memfs: mount failed: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write('ready\n');
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    fuse.unmount((err) => {
      if (err) process.stderr.write(`memfs: unmount failed: ${err.message}\n`);
      process.exit(err ? 1 : 0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGUSR2', () => {
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
    resetStats();
  });
}

main();
