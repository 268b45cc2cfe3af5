/**
 * The local backend's disk thread (see local-io.ts): whole chunk writes and
 * reads as plain synchronous system calls, one request at a time, so the
 * main thread pays one message per chunk instead of a promise per syscall.
 */
import {
  closeSync,
  fstatSync,
  fsyncSync,
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

interface PutArgs {
  /** The chunk's fan-out directory (created when missing) and its final and temporary paths. */
  dir: string;
  target: string;
  temp: string;
  data: Uint8Array;
  fsync: boolean;
  fileMode: number;
  dirMode: number;
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function openTemp({ dir, temp, fsync, fileMode, dirMode }: PutArgs): number {
  try {
    // 'wx': a temp name that somehow exists is never silently shared.
    return openSync(temp, 'wx', fileMode);
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
  return openSync(temp, 'wx', fileMode);
}

function put(args: PutArgs): HandlerResult {
  const { target, temp, data, fsync, dir } = args;
  let fd: number | undefined;
  try {
    fd = openTemp(args);
    for (let done = 0; done < data.byteLength; ) done += writeSync(fd, data, done, data.byteLength - done, done);
    if (fsync) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, target);
    if (fsync) syncPath(dir);
    return { result: null };
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {}
    throw err;
  }
}

function get({ file }: { file: string }): HandlerResult {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const data = Buffer.allocUnsafeSlow(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, data, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    // A file cut short under us (it never should be: chunks are renamed into place) reads as what is there.
    const { view, transfer } = movable(data.subarray(0, done));
    return { result: view, transfer: transfer ? [transfer] : [] };
  } finally {
    closeSync(fd);
  }
}

serveRequests({
  put: (args) => put(args as unknown as PutArgs),
  get: (args) => get(args as unknown as { file: string }),
});
