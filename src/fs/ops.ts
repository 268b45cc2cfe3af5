import type { FuseMetrics } from '../metrics/fuse.js';
import { toErrno } from './errno.js';
import { mknodAt } from './ownership.js';
import type { Stat, Vfs } from './vfs.js';

type Callback = (...args: unknown[]) => void;

/**
 * The FUSE callbacks fuse-native calls: each converts its arguments, awaits
 * the Vfs, records the call, and answers with a result or an errno. No
 * exception escapes into fuse-native, so no failing call can take the mount
 * down. Storage logic lives in vfs.ts and the engine, never here.
 */
export function buildOps(vfs: Vfs, metrics: FuseMetrics, onError?: (op: string, err: unknown) => void) {
  /** Runs an operation; `answer` turns its result into the callback's arguments. */
  function run<T>(op: string, cb: Callback, work: () => Promise<T>, answer: (result: T) => unknown[]): void {
    const started = performance.now();
    let promise: Promise<T>;
    try {
      promise = work();
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (result) => {
        metrics.recordOp(op, (performance.now() - started) / 1000, 0);
        cb(...answer(result));
      },
      (err: unknown) => {
        const errno = toErrno(err);
        metrics.recordOp(op, (performance.now() - started) / 1000, errno);
        onError?.(op, err);
        // read and write answer with a byte count in the first argument, so an error is that number.
        cb(errno);
      },
    );
  }

  const ok = (): unknown[] => [0];
  const stat = (s: Stat): unknown[] => [0, s];

  return {
    init(cb: Callback) {
      cb(0);
    },
    getattr(path: string, cb: Callback) {
      run('getattr', cb, () => vfs.getattr(path), stat);
    },
    fgetattr(path: string, fd: number, cb: Callback) {
      run('getattr', cb, () => vfs.fgetattr(path, fd), stat);
    },
    readdir(path: string, cb: Callback) {
      run(
        'readdir',
        cb,
        () => vfs.readdir(path),
        (names) => [0, names],
      );
    },
    mkdir(path: string, mode: number, cb: Callback) {
      run('mkdir', cb, () => vfs.mkdir(path, mode), ok);
    },
    rmdir(path: string, cb: Callback) {
      run('rmdir', cb, () => vfs.rmdir(path), ok);
    },
    create(path: string, mode: number, cb: Callback) {
      run(
        'create',
        cb,
        () => vfs.create(path, mode),
        (fd) => {
          metrics.setOpenFiles(vfs.openFiles);
          return [0, fd];
        },
      );
    },
    open(path: string, flags: number, cb: Callback) {
      run(
        'open',
        cb,
        () => vfs.open(path, flags),
        (fd) => {
          metrics.setOpenFiles(vfs.openFiles);
          return [0, fd];
        },
      );
    },
    read(_path: string, fd: number, buffer: Buffer, length: number, position: number, cb: Callback) {
      run(
        'read',
        cb,
        () => vfs.read(fd, buffer, length, position),
        (n) => {
          metrics.recordBytes('read', n);
          return [n];
        },
      );
    },
    write(_path: string, fd: number, buffer: Buffer, length: number, position: number, cb: Callback) {
      run(
        'write',
        cb,
        () => vfs.write(fd, buffer, length, position),
        (n) => {
          metrics.recordBytes('written', n);
          return [n];
        },
      );
    },
    flush(_path: string, fd: number, cb: Callback) {
      run('flush', cb, () => vfs.flush(fd), ok);
    },
    fsync(_path: string, _datasync: number, fd: number, cb: Callback) {
      run('fsync', cb, () => vfs.fsync(fd), ok);
    },
    release(_path: string, fd: number, cb: Callback) {
      run(
        'release',
        cb,
        () => vfs.release(fd),
        () => {
          metrics.setOpenFiles(vfs.openFiles);
          return [0];
        },
      );
    },
    truncate(path: string, size: number, cb: Callback) {
      run('truncate', cb, () => vfs.truncate(path, size), ok);
    },
    ftruncate(_path: string, fd: number, size: number, cb: Callback) {
      run('ftruncate', cb, () => vfs.ftruncate(fd, size), ok);
    },
    unlink(path: string, cb: Callback) {
      run('unlink', cb, () => vfs.unlink(path), ok);
    },
    rename(from: string, to: string, cb: Callback) {
      run('rename', cb, () => vfs.rename(from, to), ok);
    },
    mknod(path: string, mode: number, dev: number, cb: Callback) {
      run('mknod', cb, () => mknodAt(vfs, path, mode, dev), ok);
    },
    link(_from: string, _to: string, cb: Callback) {
      run('link', cb, () => vfs.link(), ok);
    },
    symlink(target: string, path: string, cb: Callback) {
      run('symlink', cb, () => vfs.symlink(target, path), ok);
    },
    readlink(path: string, cb: Callback) {
      run(
        'readlink',
        cb,
        () => vfs.readlink(path),
        (target) => [0, target],
      );
    },
    chmod(path: string, mode: number, cb: Callback) {
      run('chmod', cb, () => vfs.chmod(path, mode), ok);
    },
    chown(path: string, uid: number, gid: number, cb: Callback) {
      run('chown', cb, () => vfs.chown(path, uid, gid), ok);
    },
    utimens(path: string, atime: number, mtime: number, cb: Callback) {
      run('utimens', cb, () => vfs.utimens(path, atime, mtime), ok);
    },
    statfs(_path: string, cb: Callback) {
      run(
        'statfs',
        cb,
        () => vfs.statfs(),
        (s) => [0, s],
      );
    },
    setxattr(path: string, name: string, value: Buffer, _position: number, _flags: number, cb: Callback) {
      run('setxattr', cb, () => vfs.setxattr(path, name, Buffer.from(value)), ok);
    },
    getxattr(path: string, name: string, _position: number, cb: Callback) {
      run(
        'getxattr',
        cb,
        () => vfs.getxattr(path, name),
        (value) => [0, value],
      );
    },
    listxattr(path: string, cb: Callback) {
      run(
        'listxattr',
        cb,
        () => vfs.listxattr(path),
        (names) => [0, names],
      );
    },
    removexattr(path: string, name: string, cb: Callback) {
      run('removexattr', cb, () => vfs.removexattr(path, name), ok);
    },
  };
}
