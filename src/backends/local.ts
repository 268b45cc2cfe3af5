import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, opendir, readFile, rename, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import {
  ConfigError,
  describeError,
  InvalidError,
  LilioError,
  NoSpaceError,
  NotFoundError,
  PermissionError,
  ReadOnlyError,
  UnavailableError,
} from '../core/errors.js';
import { isChunkId, validateChunkId } from '../core/names.js';
import type { WorkerPool } from '../threads/pool.js';
import type { BackendHealth, BackendInfo, CallOptions, ChunkEntry, StorageBackend } from './backend.js';
import { acquireLocalIo, releaseLocalIo } from './local-io.js';

/** A chunk opened for streaming out (a storage node's GET). */
export interface ChunkReadStream {
  size: number;
  stream: Readable;
}

export interface LocalBackendOptions {
  name: string;
  /** Directory that holds the chunks; created on first use. */
  path: string;
  /**
   * fsync each chunk before it becomes visible and its directory after, so an
   * acknowledged write survives a power cut. Off by default: it costs a disk
   * flush per chunk, and replication already covers a single machine's loss.
   */
  fsync?: boolean;
  /**
   * Chunk I/O bypasses the page cache (O_DIRECT), where the filesystem
   * allows it; see local-io-worker.ts. On by default.
   */
  directIo?: boolean;
}

const FAN_OUT_PATTERN = /^[0-9a-f]{2}$/;
/** What put and health leave while they write (src: writeAtomically, health). */
const CHUNK_TEMP_PATTERN = /^\.[0-9a-f]{32}\.[0-9a-f]{12}\.tmp$/;
const PROBE_TEMP_PATTERN = /^\.health\.[0-9a-f]{12}\.tmp$/;
// Chunks of unencrypted buckets are plaintext user data: owner-only.
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const HEALTH_PROBE = Buffer.from('lilio health probe\n');
/**
 * Chunks at least this large, in shared memory, are written by the disk
 * threads (local-io.ts); smaller ones, or bytes the thread could not see
 * without a copy, take the asynchronous fs path on this thread.
 */
const OFFLOAD_BYTES = 64 * 1024;

type Errno = NodeJS.ErrnoException;

function errnoOf(err: unknown): string | undefined {
  return (err as Errno | undefined)?.code;
}

/**
 * Chunks as files under `path/ab/cd/abcd…` (two levels of 256 directories,
 * so no directory grows past what filesystems list quickly). A chunk is
 * written to a temporary name in its final directory and renamed into place:
 * rename is atomic within a filesystem, so a reader sees the old chunk, the
 * new one or none, never part of one.
 */
export class LocalBackend implements StorageBackend {
  readonly name: string;
  readonly type = 'local';
  readonly path: string;
  private readonly fsync: boolean;
  /** Cleared for good once the filesystem refuses direct I/O. */
  private direct: boolean;
  private rootReady: Promise<void> | undefined;
  /** Fan-out directories known to exist, so a put costs no mkdir once warm. */
  private readonly knownDirs = new Set<string>();
  private io: WorkerPool | undefined;

  constructor(options: LocalBackendOptions) {
    if (!options.name) throw new ConfigError('a local backend needs a name');
    if (!options.path) throw new ConfigError(`local backend "${options.name}" needs a path`);
    this.name = options.name;
    this.path = resolve(options.path);
    this.fsync = options.fsync ?? false;
    this.direct = options.directIo ?? true;
  }

  async put(id: string, data: Uint8Array, options?: CallOptions): Promise<void> {
    if (data.byteLength >= OFFLOAD_BYTES && data.buffer instanceof SharedArrayBuffer) {
      await this.putOnDiskThread(id, data, options);
      return;
    }
    await this.writeAtomically(id, options, true, (handle) => handle.writeFile(data));
  }

  /** put through a disk thread: one message instead of an awaited call per syscall (see local-io.ts). */
  private async putOnDiskThread(id: string, data: Uint8Array, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    const dir = this.dirOf(id);
    const target = join(dir, id);
    const temp = join(dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const answer = await this.disk().run<{ direct: boolean }>('put', {
        dir,
        target,
        temp,
        data,
        fsync: this.fsync,
        direct: this.direct,
        fileMode: FILE_MODE,
        dirMode: DIR_MODE,
      });
      this.direct &&= answer.direct;
    } catch (err) {
      throw this.mapError(err, 'write', target, options?.signal);
    }
  }

  /**
   * Stores a chunk that arrives in pieces (a storage node streaming a request
   * body), with the same temp-file-then-rename guarantee as put. `size` is the
   * announced length: fewer or more bytes fail the write and store nothing, so
   * a client that disconnects halfway never leaves a truncated chunk.
   */
  async putStream(id: string, source: AsyncIterable<Uint8Array>, size: number, options?: CallOptions): Promise<void> {
    await this.writeAtomically(id, options, false, async (handle) => {
      let received = 0;
      for await (const piece of source) {
        received += piece.byteLength;
        if (received > size) throw new InvalidError(`chunk ${id}: more than the announced ${size} bytes`);
        // One piece at a time: the source waits while the disk catches up (backpressure).
        await writeAll(handle, piece);
      }
      if (received !== size) throw new InvalidError(`chunk ${id}: ${received} of the announced ${size} bytes arrived`);
    });
  }

  private async writeAtomically(
    id: string,
    options: CallOptions | undefined,
    /** Whether `fill` may run twice (a buffer can be written again, a stream cannot). */
    replayable: boolean,
    fill: (handle: FileHandle) => Promise<void>,
  ): Promise<void> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    const dir = this.dirOf(id);
    const target = join(dir, id);
    // Two attempts: the first may trust a cached directory someone has since removed. A
    // streamed source can be consumed only once, but a missing directory fails the open,
    // before its first byte is read.
    for (let attempt = 0; ; attempt++) {
      const temp = join(dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
      let opened = false;
      try {
        await this.ensureDir(dir);
        await this.writeFile(temp, async (handle) => {
          opened = true;
          await fill(handle);
        });
        options?.signal?.throwIfAborted();
        await rename(temp, target);
        if (this.fsync) await syncDir(dir);
        return;
      } catch (err) {
        await unlink(temp).catch(() => {});
        if (errnoOf(err) === 'ENOENT' && attempt === 0 && (replayable || !opened)) {
          this.knownDirs.delete(dir);
          continue;
        }
        throw this.mapError(err, 'write', target, options?.signal);
      }
    }
  }

  async get(id: string, options?: CallOptions): Promise<Buffer> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    const file = this.fileOf(id);
    try {
      const { data, direct } = await this.disk().run<{ data: Uint8Array; direct: boolean }>('get', {
        file,
        direct: this.direct,
      });
      this.direct &&= direct;
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new NotFoundError(`backend "${this.name}" has no chunk ${id}`);
      throw this.mapError(err, 'read', file, options?.signal);
    }
  }

  /** Opens a chunk for streaming; NotFoundError when it is not held. The caller must consume or destroy the stream. */
  async getStream(id: string, options?: CallOptions): Promise<ChunkReadStream> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    const file = this.fileOf(id);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new NotFoundError(`backend "${this.name}" has no chunk ${id}`);
      throw this.mapError(err, 'read', file, options?.signal);
    }
    try {
      // The size of the file we hold open: a concurrent put renames a new file over the
      // name, but this handle keeps reading the complete old one.
      const { size } = await handle.stat();
      return { size, stream: handle.createReadStream({ autoClose: true }) };
    } catch (err) {
      await handle.close();
      throw this.mapError(err, 'read', file, options?.signal);
    }
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    const file = this.fileOf(id);
    try {
      await unlink(file);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw this.mapError(err, 'delete', file, options?.signal);
    }
  }

  async stat(id: string, options?: CallOptions): Promise<number | undefined> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    const file = this.fileOf(id);
    try {
      return (await stat(file)).size;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw this.mapError(err, 'stat', file, options?.signal);
    }
  }

  async *list(options?: CallOptions): AsyncIterable<string> {
    for await (const chunk of this.walk(options?.signal)) yield chunk.id;
  }

  async *listEntries(options?: CallOptions): AsyncIterable<ChunkEntry> {
    for await (const chunk of this.walk(options?.signal)) {
      try {
        const found = await stat(chunk.file);
        yield { id: chunk.id, size: found.size, modifiedMs: found.mtimeMs };
      } catch (err) {
        // Deleted between the directory read and the stat: no longer held.
        if (errnoOf(err) !== 'ENOENT') throw this.mapError(err, 'stat', chunk.file, options?.signal);
      }
    }
  }

  /** Every well-formed chunk file, streamed directory by directory. */
  private async *walk(signal: AbortSignal | undefined): AsyncGenerator<{ id: string; file: string }> {
    signal?.throwIfAborted();
    await this.ensureRoot();
    for await (const first of this.entries(this.path, signal)) {
      if (!FAN_OUT_PATTERN.test(first)) continue;
      const firstDir = join(this.path, first);
      for await (const second of this.entries(firstDir, signal)) {
        if (!FAN_OUT_PATTERN.test(second)) continue;
        const prefix = first + second;
        const dir = join(firstDir, second);
        // Only well-formed ids in their own directory: temp files and strays are not chunks.
        for await (const name of this.entries(dir, signal)) {
          if (isChunkId(name) && name.startsWith(prefix)) yield { id: name, file: join(dir, name) };
        }
      }
    }
  }

  async health(options?: CallOptions): Promise<BackendHealth> {
    options?.signal?.throwIfAborted();
    const started = performance.now();
    // A real write, read and delete: a stat would not notice a read-only remount or a full disk.
    const probe = join(this.path, `.health.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await this.ensureRoot();
      await this.writeFile(probe, (handle) => handle.writeFile(HEALTH_PROBE));
      const back = await readFile(probe);
      await unlink(probe);
      if (!back.equals(HEALTH_PROBE)) throw new UnavailableError(`backend "${this.name}": probe read back wrong bytes`);
      return { ok: true, latencyMs: performance.now() - started };
    } catch (err) {
      await unlink(probe).catch(() => {});
      const error = describeError(this.mapError(err, 'probe', probe, options?.signal));
      return { ok: false, latencyMs: performance.now() - started, error };
    }
  }

  async info(options?: CallOptions): Promise<BackendInfo> {
    options?.signal?.throwIfAborted();
    await this.ensureRoot();
    try {
      const [fs, dir] = await Promise.all([statfs(this.path), stat(this.path)]);
      return {
        name: this.name,
        type: this.type,
        location: this.path,
        totalBytes: fs.blocks * fs.bsize,
        freeBytes: fs.bavail * fs.bsize,
        // st_dev: directories on one filesystem share its free space.
        device: `local:${dir.dev}`,
      };
    } catch (err) {
      throw this.mapError(err, 'statfs', this.path, options?.signal);
    }
  }

  /**
   * Removes temporary files older than `olderThanMs` — what a process killed
   * in the middle of a write leaves (they are never listed as chunks, and
   * nothing else would ever delete them). Returns how many went.
   */
  async sweepTemporaryFiles(olderThanMs: number, options?: CallOptions): Promise<number> {
    const signal = options?.signal;
    await this.ensureRoot();
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const sweep = async (dir: string, pattern: RegExp) => {
      for await (const name of this.entries(dir, signal)) {
        if (!pattern.test(name)) continue;
        const file = join(dir, name);
        try {
          if ((await stat(file)).mtimeMs < cutoff) {
            await unlink(file);
            removed++;
          }
        } catch (err) {
          if (errnoOf(err) !== 'ENOENT') throw this.mapError(err, 'remove', file, signal);
        }
      }
    };
    await sweep(this.path, PROBE_TEMP_PATTERN);
    for await (const first of this.entries(this.path, signal)) {
      if (!FAN_OUT_PATTERN.test(first)) continue;
      for await (const second of this.entries(join(this.path, first), signal)) {
        if (FAN_OUT_PATTERN.test(second)) await sweep(join(this.path, first, second), CHUNK_TEMP_PATTERN);
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    if (!this.io) return;
    this.io = undefined;
    await releaseLocalIo();
  }

  private disk(): WorkerPool {
    this.io ??= acquireLocalIo();
    return this.io;
  }

  private dirOf(id: string): string {
    return join(this.path, id.slice(0, 2), id.slice(2, 4));
  }

  private fileOf(id: string): string {
    return join(this.path, id.slice(0, 2), id.slice(2, 4), id);
  }

  private async writeFile(file: string, fill: (handle: FileHandle) => Promise<void>): Promise<void> {
    // 'wx': a temp name that somehow exists is never silently shared.
    const handle = await open(file, 'wx', FILE_MODE);
    try {
      await fill(handle);
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private ensureRoot(): Promise<void> {
    this.rootReady ??= this.prepareRoot().catch((err: unknown) => {
      // Not cached: a path that is missing now (an unmounted disk) may come back.
      this.rootReady = undefined;
      throw err;
    });
    return this.rootReady;
  }

  private async prepareRoot(): Promise<void> {
    try {
      const found = await stat(this.path);
      if (!found.isDirectory()) {
        throw new ConfigError(`local backend "${this.name}": ${this.path} exists but is not a directory`);
      }
      return;
    } catch (err) {
      if (err instanceof LilioError) throw err;
      if (errnoOf(err) === 'ENOTDIR') throw this.parentIsFile();
      if (errnoOf(err) !== 'ENOENT') throw this.mapError(err, 'open', this.path);
    }
    try {
      await mkdir(this.path, { recursive: true, mode: DIR_MODE });
    } catch (err) {
      if (errnoOf(err) === 'ENOTDIR' || errnoOf(err) === 'EEXIST') throw this.parentIsFile();
      throw this.mapError(err, 'create', this.path);
    }
  }

  private parentIsFile(): ConfigError {
    return new ConfigError(`local backend "${this.name}": ${this.path} cannot be a directory: a parent is a file`);
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const created = await mkdir(dir, { recursive: true, mode: DIR_MODE });
    if (created !== undefined && this.fsync) {
      // New directory entries are durable only once their parents are synced too.
      await syncDir(dirname(dir));
      await syncDir(this.path);
    }
    this.knownDirs.add(dir);
  }

  /** Names in a directory, streamed; a directory that vanished mid-walk is just empty. */
  private async *entries(dir: string, signal: AbortSignal | undefined): AsyncGenerator<string> {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(dir);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw this.mapError(err, 'list', dir, signal);
    }
    // for-await closes the Dir when the loop ends, early or not.
    for await (const entry of handle) {
      signal?.throwIfAborted();
      yield entry.name;
    }
  }

  private mapError(err: unknown, action: string, path: string, signal?: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (err instanceof LilioError) return err;
    const where = `backend "${this.name}": cannot ${action} ${path}`;
    switch (errnoOf(err)) {
      case 'ENOSPC':
      case 'EDQUOT':
        return new NoSpaceError(`${where}: no space left on device`);
      case 'EACCES':
      case 'EPERM':
        return new PermissionError(`${where}: permission denied`);
      case 'EROFS':
        return new ReadOnlyError(`${where}: read-only filesystem`);
      case 'ENAMETOOLONG':
        return new InvalidError(`${where}: path too long`);
      default:
        return new UnavailableError(`${where}: ${describeError(err)}`, { cause: err });
    }
  }
}

async function writeAll(handle: FileHandle, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    const { bytesWritten } = await handle.write(data, offset, data.byteLength - offset);
    offset += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
