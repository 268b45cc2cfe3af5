import { createWriteStream, type Stats, type WriteStream } from 'node:fs';
import { type FileHandle, lstat, open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IsDirError, NotFoundError } from '../core/errors.js';
import { localFileError } from './local-errors.js';

/**
 * Where `lilio get` writes, opened before anything is downloaded so that a
 * target it cannot write fails at once, not after a long transfer.
 *
 * Only a regular file (or a new name) is replaced through a temporary file
 * and a rename, so a failed download never leaves a torn file. Anything else
 * is written through, as cp and curl do: a character device (/dev/null), a
 * FIFO, or the file a symlink points at. Renaming over those would replace
 * the device, the pipe or the link itself with a regular file.
 */
export interface DownloadSink {
  /** The file actually written (TARGET, or DIR/BASENAME when TARGET is a directory). */
  readonly path: string;
  readonly stream: WriteStream;
  /** After the stream finished: makes the new content visible. */
  commit(): Promise<void>;
  /** After a failure: removes what a rename would have installed; a written-through target keeps what it got. */
  abort(): Promise<void>;
  /** True when a failure may leave part of the object in the target (written through). */
  readonly inPlace: boolean;
}

async function statOrUndefined(path: string, follow: boolean) {
  try {
    return follow ? await stat(path) : await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw localFileError(err, path);
  }
}

/** Resolves TARGET (DIR -> DIR/BASENAME of the key) and opens it for writing. */
export async function openDownload(target: string, key: string): Promise<DownloadSink> {
  let path = target;
  const followed = await statOrUndefined(path, true);
  if (followed?.isDirectory()) {
    path = join(target, basename(key));
    const inside = await statOrUndefined(path, true);
    if (inside?.isDirectory()) throw new IsDirError(`${path} is a directory`);
  } else if (/\/$/.test(target)) {
    // "out/" names a directory; without one there, writing a file "out" would not be what was asked.
    throw new NotFoundError(`${target}: no such directory`);
  }
  const entry = await statOrUndefined(path, false);
  if (entry?.isSymbolicLink()) {
    // Written through to what the link points at; a regular file there is still replaced whole.
    const pointed = await statOrUndefined(path, true);
    if (pointed?.isFile()) return openReplacing(await realpath(path), pointed, path);
    return openInPlace(path);
  }
  if (entry && !entry.isFile()) return openInPlace(path);
  return openReplacing(path, entry, path);
}

async function openInPlace(path: string): Promise<DownloadSink> {
  let handle: FileHandle;
  try {
    // 'w' follows a symlink, and truncates a regular file it points at; devices and FIFOs ignore O_TRUNC.
    // Opening a FIFO waits for a reader, as cp does.
    handle = await open(path, 'w', 0o666);
  } catch (err) {
    throw localFileError(err, path);
  }
  const stream = createWriteStream(path, { fd: handle, autoClose: true });
  return {
    path,
    stream,
    inPlace: true,
    commit: async () => undefined,
    abort: async () => {
      stream.destroy();
    },
  };
}

async function openReplacing(path: string, existing: Stats | undefined, shown: string): Promise<DownloadSink> {
  const temp = join(dirname(path), `.${basename(path)}.lilio-${process.pid}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(temp, 'wx', 0o666);
  } catch (err) {
    // The user named TARGET, not our temporary file: say what is wrong with where TARGET lives.
    throw localFileError(err, shown);
  }
  // The replaced file keeps its permission bits and owner, as cp into an existing file does
  // (the owner only when we may set it: as root, or when it is already ours).
  if (existing !== undefined) {
    await handle.chown(existing.uid, existing.gid).catch(() => undefined);
    await handle.chmod(existing.mode & 0o7777).catch(() => undefined);
  }
  const stream = createWriteStream(temp, { fd: handle, autoClose: true });
  return {
    path: shown,
    stream,
    inPlace: false,
    commit: async () => {
      try {
        await rename(temp, path);
      } catch (err) {
        await unlink(temp).catch(() => undefined);
        throw localFileError(err, shown);
      }
    },
    abort: async () => {
      stream.destroy();
      await unlink(temp).catch(() => undefined);
    },
  };
}
