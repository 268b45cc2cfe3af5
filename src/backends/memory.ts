import { NoSpaceError, NotFoundError } from '../core/errors.js';
import { validateChunkId } from '../core/names.js';
import type { BackendHealth, BackendInfo, CallOptions, ChunkEntry, StorageBackend } from './backend.js';

export interface MemoryBackendOptions {
  name: string;
  /** Refuse puts that would hold more than this many bytes (to test full backends). */
  capacityBytes?: number;
  /** Shared with the other memory backends of one engine: see SharedReplicas. */
  shared?: SharedReplicas;
}

/**
 * Memory backends of one engine stand in for disks on different machines,
 * which would copy a chunk's replicas at the same time. Here the copies would
 * run one after another, each a fresh allocation, so the replicas of a chunk
 * share one copy when their bytes are equal. It is refcounted, never handed
 * out and never written to; a replica whose bytes differ keeps its own.
 */
export class SharedReplicas {
  private readonly entries = new Map<string, { bytes: Buffer; refs: number }>();

  /** The immutable copy to store for `data` under `id`: the shared one if its bytes are equal. */
  retain(id: string, data: Uint8Array): Buffer {
    const entry = this.entries.get(id);
    if (entry?.bytes.equals(data)) {
      entry.refs++;
      return entry.bytes;
    }
    const bytes = copy(data);
    if (!entry) this.entries.set(id, { bytes, refs: 1 });
    return bytes;
  }

  /** One backend lets go of the bytes it stored under `id`. */
  release(id: string, bytes: Buffer): void {
    const entry = this.entries.get(id);
    if (entry?.bytes === bytes && --entry.refs === 0) this.entries.delete(id);
  }
}

/**
 * Chunks in a Map, for tests and throwaway setups. Stores and returns copies,
 * so neither the writer reusing its buffer nor a reader scribbling on what it
 * got can change what is stored — the same guarantee a disk gives.
 */
export class MemoryBackend implements StorageBackend {
  readonly name: string;
  readonly type = 'memory';
  private readonly capacityBytes: number | undefined;
  private readonly shared: SharedReplicas;
  private readonly chunks = new Map<string, Buffer>();
  /** When each chunk was last put, for listEntries. */
  private readonly modified = new Map<string, number>();
  private usedBytes = 0;

  constructor(options: MemoryBackendOptions) {
    this.name = options.name;
    this.capacityBytes = options.capacityBytes;
    this.shared = options.shared ?? new SharedReplicas();
  }

  async put(id: string, data: Uint8Array, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    const previous = this.chunks.get(id);
    const used = this.usedBytes - (previous?.length ?? 0) + data.length;
    if (this.capacityBytes !== undefined && used > this.capacityBytes) {
      throw new NoSpaceError(`backend "${this.name}": ${data.length} bytes do not fit in ${this.capacityBytes}`);
    }
    // Retained before the previous bytes are released: a rewrite of equal bytes (a repair) reuses them.
    this.chunks.set(id, this.shared.retain(id, data));
    if (previous) this.shared.release(id, previous);
    this.modified.set(id, Date.now());
    this.usedBytes = used;
  }

  async get(id: string, options?: CallOptions): Promise<Buffer> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    const stored = this.chunks.get(id);
    if (!stored) throw new NotFoundError(`backend "${this.name}" has no chunk ${id}`);
    return copy(stored);
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    const stored = this.chunks.get(id);
    if (!stored) return;
    this.shared.release(id, stored);
    this.chunks.delete(id);
    this.modified.delete(id);
    this.usedBytes -= stored.length;
  }

  async stat(id: string, options?: CallOptions): Promise<number | undefined> {
    validateChunkId(id);
    options?.signal?.throwIfAborted();
    return this.chunks.get(id)?.length;
  }

  async *list(options?: CallOptions): AsyncIterable<string> {
    options?.signal?.throwIfAborted();
    // A snapshot, so deleting while listing (garbage collection does) is safe.
    yield* [...this.chunks.keys()];
  }

  async *listEntries(options?: CallOptions): AsyncIterable<ChunkEntry> {
    options?.signal?.throwIfAborted();
    const snapshot = [...this.chunks].map(([id, data]) => ({
      id,
      size: data.length,
      modifiedMs: this.modified.get(id)!,
    }));
    yield* snapshot;
  }

  /** Pretends a chunk was written `ageMs` ago (tests of age-based garbage collection). */
  age(id: string, ageMs: number): void {
    if (this.modified.has(id)) this.modified.set(id, Date.now() - ageMs);
  }

  async health(options?: CallOptions): Promise<BackendHealth> {
    options?.signal?.throwIfAborted();
    return { ok: true, latencyMs: 0 };
  }

  async info(options?: CallOptions): Promise<BackendInfo> {
    options?.signal?.throwIfAborted();
    const info: BackendInfo = { name: this.name, type: this.type, location: 'memory' };
    if (this.capacityBytes !== undefined) {
      info.totalBytes = this.capacityBytes;
      info.freeBytes = this.capacityBytes - this.usedBytes;
    }
    return info;
  }

  async close(): Promise<void> {}
}

function copy(data: Uint8Array): Buffer {
  // allocUnsafeSlow: a small chunk must not pin a shared 8 KiB slab for its lifetime.
  const out = Buffer.allocUnsafeSlow(data.length);
  out.set(data);
  return out;
}
