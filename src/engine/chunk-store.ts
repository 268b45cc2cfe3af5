import { LRUCache } from 'lru-cache';
import { BufferPool, sharedBuffersFor } from '../core/buffer-pool.js';
import { newChunkId } from '../core/chunk-id.js';
import { ENCRYPTION_OVERHEAD } from '../core/crypto.js';
import { IntegrityError, NotFoundError } from '../core/errors.js';
import type { HashRing } from '../core/ring.js';
import { Semaphore } from '../core/semaphore.js';
import type { BucketRecord, ChunkRef } from '../core/types.js';
import type { Collector } from '../metrics/collector.js';
import type { BackendSet } from './backend-set.js';
import { ChunkCodec } from './chunk-codec.js';
import type { RepairStore } from './repair-ledger.js';
import { RepairQueue } from './repair-queue.js';
import { ReplicaShortfalls } from './replica-shortfall.js';
import { readVerified, writeReplicas } from './replication.js';

/** A bucket as the data path needs it: its record and, when encrypted, its unwrapped data key. */
export interface BucketContext {
  readonly record: BucketRecord;
  readonly dataKey?: Buffer;
}

export interface ChunkStoreOptions {
  n: number;
  w: number;
  r: number;
  readMode: 'first' | 'strict';
  hedgeMs: number;
  cacheBytes: number;
  chunksInFlightTotal: number;
  /** Threads that hash and encrypt chunks (0: the main thread does it). */
  codecThreads?: number;
  /** Where pending repairs are persisted (the metadata store); without it they live in memory only. */
  repairStore?: RepairStore;
}

export interface SealedChunk {
  /** Resolves once W replicas hold the chunk; rejects with QuorumError (nothing left behind). */
  ref: Promise<ChunkRef>;
  /** Resolves when every replica call is over; only then may the plaintext buffer be reused. */
  settled: Promise<void>;
}

/**
 * Chunks as the engine sees them: sealing (encrypt, checksum, place on the
 * ring, replicate with quorum) and reading (cache, verified replica, decrypt).
 * Chunk ids are random and chunks immutable, so the cache is keyed by id and
 * can never serve stale bytes.
 */
export class ChunkStore {
  readonly repairs: RepairQueue;
  /** Chunks whose write missed replicas, until the commit that uses them reports it. */
  readonly shortfalls = new ReplicaShortfalls();
  private readonly cache: LRUCache<string, Buffer> | undefined;
  private readonly fetching = new Map<string, Promise<Buffer>>();
  private readonly inFlight: Semaphore;
  private inFlightCount = 0;
  /** Replica writes not finished yet, stragglers after quorum included. */
  private readonly unsettled = new Set<Promise<void>>();
  private readonly codec: ChunkCodec;
  /**
   * Told of every chunk sealed, before its replicas are written: the engine's
   * session records a write hold for it, so no gc deletes it before its commit.
   */
  onSealed: ((chunk: ChunkRef) => void) | undefined;
  /** Ciphertext buffers of full chunks, by stored size: encrypted writes reuse them like plaintext ones. */
  private readonly storedPools = new Map<number, BufferPool>();

  constructor(
    private readonly backends: BackendSet,
    private readonly ring: HashRing,
    private readonly collector: Collector,
    private readonly options: ChunkStoreOptions,
  ) {
    this.inFlight = new Semaphore(options.chunksInFlightTotal);
    this.codec = new ChunkCodec(options.codecThreads);
    this.repairs = new RepairQueue(backends, collector, (chunk) => this.repairSource(chunk), options.repairStore);
    if (options.cacheBytes > 0) {
      this.cache = new LRUCache<string, Buffer>({
        maxSize: options.cacheBytes,
        sizeCalculation: (value) => Math.max(1, value.byteLength),
      });
    }
  }

  /**
   * Seals one chunk. Waits for a process-wide in-flight slot first, so that a
   * slow backend slows writers down instead of growing memory.
   */
  async seal(ctx: BucketContext, plaintext: Buffer): Promise<SealedChunk> {
    await this.inFlight.acquire();
    this.setInFlight(+1);
    const id = newChunkId();
    const target = ctx.dataKey ? this.storedBuffer(ctx, plaintext.byteLength) : undefined;
    // Encryption and hashing run on a codec thread; the caller does not wait for them, only
    // for the in-flight slot above.
    const write = (async () => {
      const sealed = await this.codec.seal(ctx.dataKey, id, plaintext, target?.buf);
      const chunk: ChunkRef = {
        id,
        size: plaintext.byteLength,
        storedSize: sealed.stored.byteLength,
        checksum: sealed.checksum,
        replicas: this.ring.place(id, this.options.n),
      };
      this.onSealed?.(chunk);
      const replicated = writeReplicas(
        this.backends,
        this.collector,
        chunk,
        sealed.stored,
        this.options.w,
        (c, backend, reason) => {
          this.shortfalls.missedReplica(c.id, backend, reason.replace(/^write failed: /, ''));
          this.repairs.add(c, backend, reason);
        },
      );
      return { chunk, replicated };
    })();
    const ref = write.then(async ({ chunk, replicated }) => {
      await replicated.quorum;
      return chunk;
    });
    const settled = write
      .then(
        ({ replicated }) => replicated.settled,
        () => undefined,
      )
      .finally(() => {
        if (target) target.pool.give(target.buf);
        this.inFlight.release();
        this.setInFlight(-1);
      });
    // Stragglers may still be writing after quorum; settled is what the caller waits on to reuse buffers.
    settled.catch(() => undefined);
    ref.catch(() => undefined);
    this.unsettled.add(settled);
    this.shortfalls.replicate(id, settled);
    void settled.finally(() => this.unsettled.delete(settled)).catch(() => undefined);
    return { ref, settled };
  }

  /**
   * Where the ciphertext of a chunk goes: a pooled buffer sized for the
   * bucket's full chunks, which the odd last chunk of an object uses a part of.
   */
  private storedBuffer(ctx: BucketContext, plaintextSize: number): { buf: Buffer; pool: BufferPool } {
    const size = Math.max(plaintextSize, ctx.record.chunkSize) + ENCRYPTION_OVERHEAD;
    let pool = this.storedPools.get(size);
    if (!pool) {
      pool = new BufferPool(size, sharedBuffersFor(size, this.options.chunksInFlightTotal));
      this.storedPools.set(size, pool);
    }
    return { buf: pool.take(), pool };
  }

  /**
   * The plaintext of a chunk. Concurrent reads of one chunk share one fetch.
   * `keep: false` (sequential streams) serves from the cache but does not fill
   * it: a scan of a large file would only push out what random readers reuse,
   * and the kernel page cache already holds what a scan read.
   */
  read(ctx: BucketContext, chunk: ChunkRef, keep = true): Promise<Buffer> {
    const cached = this.cache?.get(chunk.id);
    if (cached) {
      this.collector.recordCacheLookup(true);
      return Promise.resolve(cached);
    }
    this.collector.recordCacheLookup(false);
    let pending = this.fetching.get(chunk.id);
    if (!pending) {
      pending = this.fetch(ctx, chunk, keep).finally(() => this.fetching.delete(chunk.id));
      this.fetching.set(chunk.id, pending);
    }
    return pending;
  }

  /** Starts fetching a chunk into the cache (read-ahead); errors are left for the real read. */
  prefetch(ctx: BucketContext, chunk: ChunkRef): void {
    if (!this.cache || this.cache.has(chunk.id) || this.fetching.has(chunk.id)) return;
    this.read(ctx, chunk).catch(() => undefined);
  }

  /** Deletes every replica; resolves with the backends that could not delete it. */
  async delete(chunk: ChunkRef): Promise<string[]> {
    this.cache?.delete(chunk.id);
    this.shortfalls.forget(chunk.id);
    const failed: string[] = [];
    await Promise.all(
      chunk.replicas.map((name) => this.backends.delete(name, chunk.id).catch(() => void failed.push(name))),
    );
    return failed;
  }

  /**
   * The stored bytes if they match the chunk's checksum, else undefined; on a
   * codec thread, without decrypting. `stored` may move there: use the answer.
   */
  async verify(chunk: ChunkRef, stored: Buffer): Promise<Buffer | undefined> {
    const opened = await this.codec.open(undefined, chunk.id, stored, chunk.checksum);
    return opened.verified ? opened.stored : undefined;
  }

  /** Stored bytes of a chunk from a verified replica (repair, scrub); nothing is decrypted. */
  readStored(chunk: ChunkRef): Promise<Buffer> {
    return readVerified(
      this.backends,
      this.collector,
      chunk,
      { mode: 'first', r: 1, hedgeMs: this.options.hedgeMs },
      () => undefined,
      (data) => this.verify(chunk, data),
    );
  }

  /**
   * Stored bytes to repair a chunk from; NotFoundError when every replica is
   * missing or corrupt (nothing to copy: the chunk was deleted, or is lost),
   * anything else when a replica might yet be reached.
   */
  private async repairSource(chunk: ChunkRef): Promise<Buffer> {
    let gone = 0;
    try {
      return await readVerified(
        this.backends,
        this.collector,
        chunk,
        { mode: 'first', r: 1, hedgeMs: this.options.hedgeMs },
        () => void gone++,
        (data) => this.verify(chunk, data),
      );
    } catch (err) {
      if (gone >= chunk.replicas.length) throw new NotFoundError(`chunk ${chunk.id}: no replica left to repair from`);
      throw err;
    }
  }

  /** Resolves when every replica write started so far has finished. */
  async drain(): Promise<void> {
    while (this.unsettled.size > 0) await Promise.allSettled([...this.unsettled]);
  }

  cachedBytes(): number {
    return this.cache?.calculatedSize ?? 0;
  }

  private async fetch(ctx: BucketContext, chunk: ChunkRef, keep: boolean): Promise<Buffer> {
    const repairs: Array<{ backend: string; reason: string }> = [];
    const opened = await readVerified(
      this.backends,
      this.collector,
      chunk,
      { mode: this.options.readMode, r: this.options.r, hedgeMs: this.options.hedgeMs },
      (_c, backend, reason) => repairs.push({ backend, reason }),
      async (data) => {
        const result = await this.codec.open(ctx.dataKey, chunk.id, data, chunk.checksum);
        return result.verified ? result : undefined;
      },
    );
    // Read repair: we hold verified bytes, so the damaged replicas are rewritten from them.
    for (const { backend, reason } of repairs) this.repairs.add(chunk, backend, reason, opened.stored);
    const plaintext = opened.plaintext;
    if (!opened.authentic || !plaintext) {
      throw new IntegrityError('encrypted chunk does not authenticate (damaged, wrong key or wrong chunk id)');
    }
    if (plaintext.byteLength !== chunk.size) {
      throw new IntegrityError(`chunk ${chunk.id} decoded to ${plaintext.byteLength} bytes, expected ${chunk.size}`);
    }
    if (this.cache && keep) {
      this.cache.set(chunk.id, plaintext);
      this.collector.setCacheBytes(this.cache.calculatedSize);
    }
    return plaintext;
  }

  /** Stops the codec threads (after drain). */
  async close(): Promise<void> {
    await this.codec.close();
  }

  private setInFlight(delta: number): void {
    this.inFlightCount += delta;
    this.collector.setChunksInFlight(this.inFlightCount);
  }
}
