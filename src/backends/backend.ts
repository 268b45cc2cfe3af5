/**
 * The contract every storage backend implements: local directories, memory,
 * S3, Google Drive and Lilio storage nodes over HTTP. A backend stores opaque,
 * immutable chunks by id; it knows nothing of objects, buckets or encryption.
 *
 * Chunk ids are validated by the caller (core/names.ts isChunkId) and again by
 * every backend that maps them onto paths or URLs.
 */
export interface BackendInfo {
  name: string;
  type: string;
  /** Where the chunks live, for humans (a path, a URL, a bucket). */
  location: string;
  /** Capacity of the underlying storage, when the backend can tell. */
  totalBytes?: number;
  freeBytes?: number;
  /**
   * Names the storage that capacity belongs to, when several backends of one
   * process can share it (local directories on one filesystem): backends with
   * the same device share one capacity, which is counted once.
   */
  device?: string;
}

export interface BackendHealth {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

/** A chunk as a detailed listing reports it. */
export interface ChunkEntry {
  id: string;
  /** Stored size in bytes. */
  size: number;
  /**
   * When the chunk was last written, milliseconds since the epoch on the
   * caller's clock as near as the backend can tell. Garbage collection uses it
   * to leave chunks of uploads still in flight alone.
   */
  modifiedMs: number;
}

export interface CallOptions {
  /** Abort the call (deadline or no longer needed). */
  signal?: AbortSignal;
}

export interface StorageBackend {
  readonly name: string;
  readonly type: string;

  /** Stores the chunk atomically: a reader never sees a partial chunk. Rewriting an id replaces it. */
  put(id: string, data: Uint8Array, options?: CallOptions): Promise<void>;
  /** The chunk's bytes; NotFoundError when the backend does not hold it. */
  get(id: string, options?: CallOptions): Promise<Buffer>;
  /** Removes the chunk; succeeds when it is already gone. */
  delete(id: string, options?: CallOptions): Promise<void>;
  /** The stored size, or undefined when the backend does not hold the chunk. */
  stat(id: string, options?: CallOptions): Promise<number | undefined>;
  /** Every chunk id held, in no particular order. */
  list(options?: CallOptions): AsyncIterable<string>;
  /**
   * Every chunk held with its size and age, in no particular order. Optional:
   * a backend that cannot tell a chunk's age leaves it out, and garbage
   * collection then never deletes unreferenced chunks it finds there (only
   * the ones the garbage queue names).
   */
  listEntries?(options?: CallOptions): AsyncIterable<ChunkEntry>;
  /**
   * Removes temporary files older than `olderThanMs` that writes cut short
   * (a killed process) left behind, and resolves with how many went.
   * Optional: only backends that write under a temporary name and rename
   * (local directories, storage nodes) have any; S3 and Drive store a chunk
   * in one atomic request.
   */
  sweepTemporaryFiles?(olderThanMs: number, options?: CallOptions): Promise<number>;
  /** A cheap liveness check that touches the real storage. */
  health(options?: CallOptions): Promise<BackendHealth>;
  info(options?: CallOptions): Promise<BackendInfo>;
  close(): Promise<void>;
}
