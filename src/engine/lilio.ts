import { randomBytes } from 'node:crypto';
import type { StorageBackend } from '../backends/backend.js';
import { createBackends } from '../backends/index.js';
import type { Config } from '../config/load.js';
import { loadMasterKey } from '../config/master-key.js';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../config/schema.js';
import { BufferPool, sharedBuffersFor } from '../core/buffer-pool.js';
import { generateDataKey, unwrapKey, wrapKey } from '../core/crypto.js';
import { ConflictError, describeError, InvalidError, NotFoundError } from '../core/errors.js';
import { validateBucketName, validateKey } from '../core/names.js';
import { HashRing } from '../core/ring.js';
import type { BucketRecord, ChunkRef, ObjectAttrs, ObjectDraft, ObjectRecord } from '../core/types.js';
import { commandLogger, type Logger } from '../log/logger.js';
import { sameBucket } from '../meta/commit-rules.js';
import { openMetadataStore } from '../meta/index.js';
import type { Expect, ListOptions, ListPage, MetadataStore } from '../meta/store.js';
import type { Collector, ObjectOperation } from '../metrics/collector.js';
import { NoopCollector } from '../metrics/noop.js';
import { BackendSet } from './backend-set.js';
import { type Capacity, usableCapacity } from './capacity.js';
import { type BucketContext, ChunkStore } from './chunk-store.js';
import { CommitOutcomes } from './commit-outcome.js';
import { ObjectReader } from './object-reader.js';
import { type CommitOptions, defaultAttrs, ObjectWriter, type WriterDeps } from './object-writer.js';
import { describeMissed } from './replica-shortfall.js';
import { MultipartUploads } from './uploads.js';
import { openXattrs } from './xattrs.js';

/** Attribute updates of one bucket racing with others: retried this often, then the conflict is reported. */
const BUCKET_UPDATE_ATTEMPTS = 10;

import { EngineSession, type VersionHold } from './session.js';
import { sweepTemporaryFiles, type TemporaryFileSweep } from './temporary-files.js';

/** How often a long-running process sweeps temporary files: they appear only when a writer is killed. */
const TEMPORARY_SWEEP_INTERVAL_MS = 60 * 60_000;
/** How often a long-running process looks for repairs other processes recorded (CLI commands that exited). */
const REPAIR_LOAD_INTERVAL_MS = 10 * 60_000;

export interface OpenOptions {
  collector?: Collector;
  /** Use these instead of building backends from config.storages (tests, fault injection). */
  backends?: StorageBackend[];
  /** Use this store instead of opening config.metadata. */
  meta?: MetadataStore;
  /** How long a commit whose answer was lost is read back before its outcome is left unknown (default 30 s). */
  commitReadBackMs?: number;
  /** What this process is, as `lilio status` lists its session; default: its command line. */
  role?: string;
  /** Where the engine's warnings go; default: "lilio: warning: ..." on stderr, as a CLI command prints. */
  logger?: Logger;
}

/** Long enough for an etcd leader election or a restarted member; a close(2) waits this long at worst. */
const COMMIT_READ_BACK_MS = 30_000;

export interface CreateBucketOptions {
  encrypt?: boolean;
  chunkSize?: number;
  attrs?: Partial<ObjectAttrs>;
}

/**
 * The storage engine: buckets and objects built from the ring, the backends,
 * the metadata store and the chunk store. The CLI, the HTTP server and the
 * mount all go through it; none of them touches a backend directly.
 */
export class Lilio {
  readonly ring: HashRing;
  readonly backends: BackendSet;
  readonly chunks: ChunkStore;
  /** This process's session: what it writes and reads is safe from gc in every process. */
  readonly session: EngineSession;
  private readonly pools = new Map<number, BufferPool>();
  private readonly buckets = new Map<string, { ctx: BucketContext; generation: number }>();
  private masterKeyCache: Buffer | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private lastTemporarySweep = 0;
  private lastRepairLoad = Date.now();
  readonly writerDeps: WriterDeps;
  /** S3 multipart uploads: parts streamed into chunks, completed in one commit (uploads.ts). */
  readonly uploads: MultipartUploads;
  /** Every object commit, delete and rename goes through it: see commit-outcome.ts. */
  private readonly outcomes: CommitOutcomes;
  /** Reports of commits whose chunks missed replicas, still waiting for the last replica writes. */
  private readonly shortfallReports = new Set<Promise<void>>();

  private constructor(
    readonly config: Config,
    readonly meta: MetadataStore,
    backends: StorageBackend[],
    readonly collector: Collector,
    commitReadBackMs: number,
    role: string,
    readonly logger: Logger,
  ) {
    this.outcomes = new CommitOutcomes(meta, { budgetMs: commitReadBackMs });
    this.ring = new HashRing(
      backends.map((b) => b.name),
      config.ring.virtualNodes,
    );
    this.backends = new BackendSet(backends, collector, {
      timeoutMs: config.backends.timeoutMs,
      probeIntervalMs: config.backends.probeIntervalMs,
    });
    this.chunks = new ChunkStore(this.backends, this.ring, collector, {
      n: config.quorum.n,
      w: config.quorum.w,
      r: config.quorum.r,
      readMode: config.quorum.readMode,
      hedgeMs: config.reads.replicaTimeoutMs,
      cacheBytes: config.cache.size,
      chunksInFlightTotal: config.writes.chunksInFlightTotal,
      repairStore: meta,
    });
    this.session = new EngineSession(meta, {
      ttlMs: config.sessions.ttlSeconds * 1000,
      role,
      log: (message) => logger.warn(message),
    });
    this.chunks.onSealed = (chunk) => this.session.noteSealed(chunk);
    this.writerDeps = {
      chunks: this.chunks,
      meta,
      settle: (chunks) => this.session.settle(chunks),
      pool: (size) => this.pool(size),
      inlineThreshold: config.inlineThreshold,
      chunksInFlightPerObject: config.writes.chunksInFlightPerObject,
      discard: (chunks) => this.discard(chunks),
      commit: (draft, expect, fresh) => this.commitRecord(draft, expect, fresh),
    };
    this.uploads = new MultipartUploads({
      meta,
      writerDeps: this.writerDeps,
      outcomes: this.outcomes,
      bucket: (name) => this.bucket(name),
      openObject: (bucket, key) => this.openObject(bucket, key),
      readObject: (reader, range) => this.readObject(reader, range),
      settle: (chunks) => this.session.settle(chunks),
      discard: (chunks) => this.discard(chunks),
      minPartSize: config.uploads.minPartSize,
      expireAfterMs: config.uploads.expireAfterSeconds * 1000,
    });
  }

  static async open(config: Config, options: OpenOptions = {}): Promise<Lilio> {
    const backends = options.backends ?? createBackends(config.storages);
    if (backends.length < config.quorum.n) {
      throw new InvalidError(
        `N=${config.quorum.n} replicas need ${config.quorum.n} backends, ${backends.length} given`,
      );
    }
    const meta = options.meta ?? openMetadataStore(config.metadata, `${config.home}/meta`);
    const role = options.role ?? ['lilio', ...process.argv.slice(2, 4)].join(' ');
    return new Lilio(
      config,
      meta,
      backends,
      options.collector ?? new NoopCollector(),
      options.commitReadBackMs ?? COMMIT_READ_BACK_MS,
      role,
      options.logger ?? commandLogger(),
    );
  }

  // ---- buckets ----

  async createBucket(name: string, options: CreateBucketOptions = {}): Promise<BucketRecord> {
    validateBucketName(name);
    const chunkSize = options.chunkSize ?? this.config.chunkSize;
    if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
      throw new InvalidError(`chunk size ${chunkSize} is out of range (64 KiB to 64 MiB)`);
    }
    const now = Date.now();
    const record: BucketRecord = {
      name,
      createdAt: now,
      id: randomBytes(16).toString('hex'),
      encrypted: options.encrypt ?? false,
      chunkSize,
      attrs: { ...defaultAttrs(now, 'dir'), ...options.attrs },
    };
    if (record.encrypted) record.wrappedKey = wrapKey(await this.masterKeyForNewBucket(), generateDataKey(), name);
    await this.timedMeta('createBucket', () => this.meta.createBucket(record));
    return record;
  }

  async getBucket(name: string): Promise<BucketRecord> {
    return (await this.bucket(name)).record;
  }

  listBuckets(): Promise<BucketRecord[]> {
    return this.timedMeta('listBuckets', () => this.meta.listBuckets());
  }

  /**
   * Deletes an empty bucket. Multipart uploads in progress do not keep it
   * (as on S3): once it holds no object they are aborted, their parts queued
   * as garbage. One created meanwhile is left to expiry and cannot complete.
   */
  async deleteBucket(name: string): Promise<void> {
    // A bucket that is not there is for the store's delete to report, as always.
    const page = await this.meta.list(name, { limit: 1 }).catch(() => undefined);
    if (page && page.objects.length === 0 && page.prefixes.length === 0) await this.uploads.abortAll(name);
    await this.timedMeta('deleteBucket', () => this.meta.deleteBucket(name));
    this.buckets.delete(name);
  }

  /**
   * Changes a bucket folder's attributes (chmod, chown, utimens on the mount).
   * The store compares-and-sets on the bucket's identity and version, and only
   * attributes are written, so the data key can never be replaced by a stale
   * copy. When another process changed the attributes in between, the change
   * is applied again on the fresh record (last writer wins per field). When
   * the bucket was deleted, or deleted and re-created, in between, the folder
   * the caller meant is gone: NotFoundError, and the new bucket is left alone.
   */
  async updateBucketAttrs(name: string, attrs: Partial<ObjectAttrs>): Promise<BucketRecord> {
    const first = await this.timedMeta('getBucket', () => this.meta.getBucket(name));
    if (!first) throw new NotFoundError(`bucket "${name}" does not exist`);
    let read = first;
    for (let attempt = 1; ; attempt++) {
      try {
        const changed = { ...read.attrs, ...attrs, ctimeMs: Date.now() };
        const record = await this.timedMeta('updateBucket', () => this.meta.updateBucket(read, changed));
        this.buckets.delete(name);
        return record;
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= BUCKET_UPDATE_ATTEMPTS) throw err;
      }
      const current = await this.timedMeta('getBucket', () => this.meta.getBucket(name));
      if (!current || !sameBucket(current, first)) {
        this.buckets.delete(name);
        throw new NotFoundError(`bucket "${name}" was deleted (or re-created) while its attributes were being changed`);
      }
      read = current;
    }
  }

  /**
   * A bucket with its unwrapped data key. Cached, and revalidated whenever the
   * metadata store's generation moves (another process may have deleted and
   * re-created the bucket with a new key).
   */
  async bucket(name: string): Promise<BucketContext> {
    const generation = this.meta.generation();
    const cached = this.buckets.get(name);
    if (cached && cached.generation === generation) return cached.ctx;
    const record = await this.timedMeta('getBucket', () => this.meta.getBucket(name));
    if (!record) {
      this.buckets.delete(name);
      throw new NotFoundError(`bucket "${name}" does not exist`);
    }
    let ctx: BucketContext;
    if (cached && sameBucket(cached.ctx.record, record)) {
      ctx = { record, dataKey: cached.ctx.dataKey };
    } else {
      ctx = record.wrappedKey ? { record, dataKey: unwrapKey(this.masterKey(), record.wrappedKey, name) } : { record };
    }
    this.buckets.set(name, { ctx, generation });
    return ctx;
  }

  // ---- objects ----

  /** A writer for a new version of bucket/key; nothing is visible until its commit. */
  async writer(bucket: string, key: string, options: { chunkSize?: number } = {}): Promise<ObjectWriter> {
    validateKey(key);
    const ctx = await this.bucket(bucket);
    return new ObjectWriter(this.writerDeps, ctx, key, options.chunkSize ?? ctx.record.chunkSize);
  }

  /** Streams `source` into a new version of bucket/key and commits it. */
  async putObject(
    bucket: string,
    key: string,
    source: AsyncIterable<Uint8Array>,
    options: CommitOptions = {},
  ): Promise<ObjectRecord> {
    return this.timedOp(bucket, 'put', async () => {
      const writer = await this.writer(bucket, key);
      try {
        for await (const piece of source) await writer.write(piece);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      const record = await writer.commit(options);
      this.collector.recordObjectSize(bucket, record.size);
      return record;
    });
  }

  async headObject(bucket: string, key: string): Promise<ObjectRecord> {
    validateKey(key);
    await this.bucket(bucket);
    const record = await this.timedMeta('getObject', () => this.meta.getObject(bucket, key));
    if (!record) throw new NotFoundError(`object "${bucket}/${key}" does not exist`);
    return record;
  }

  /** headObject as users are shown it (CLI stat, the API's ?stat): xattr values in plaintext. */
  async statObject(bucket: string, key: string): Promise<ObjectRecord> {
    const record = await this.headObject(bucket, key);
    const xattrs = openXattrs(await this.bucket(bucket), record.xattrs);
    return xattrs ? { ...record, xattrs } : record;
  }

  /** Opens the current version for reading; the reader keeps that version. */
  async openObject(bucket: string, key: string): Promise<ObjectReader> {
    const record = await this.headObject(bucket, key);
    return this.reader(await this.bucket(bucket), record);
  }

  reader(ctx: BucketContext, record: ObjectRecord): ObjectReader {
    return new ObjectReader(this.chunks, ctx, record);
  }

  /** Streams an object's bytes (optionally a range), recording the get when the stream ends. */
  async *getObject(bucket: string, key: string, range?: { start: number; end: number }): AsyncGenerator<Buffer> {
    const started = performance.now();
    let reader: ObjectReader;
    try {
      reader = await this.openObject(bucket, key);
    } catch (err) {
      this.collector.recordObjectOp(bucket, 'get', (performance.now() - started) / 1000, false);
      throw err;
    }
    yield* this.readObject(reader, range, started);
  }

  /**
   * Streams the version an opened reader holds (the HTTP API opens first, to
   * answer headers and ranges from that version's size), recording the get.
   */
  async *readObject(
    reader: ObjectReader,
    range?: { start: number; end: number },
    started = performance.now(),
  ): AsyncGenerator<Buffer> {
    const bucket = reader.record.bucket;
    let ok = false;
    // Held for as long as the stream runs: a concurrent overwrite cannot have its chunks reaped.
    const hold = await this.holdVersion(reader.record);
    try {
      yield* reader.stream(range?.start, range?.end);
      this.collector.recordObjectSize(bucket, reader.size);
      ok = true;
    } finally {
      this.collector.recordObjectOp(bucket, 'get', (performance.now() - started) / 1000, ok);
      await hold.release();
    }
  }

  /**
   * Holds a version's chunks against garbage collection (in every process)
   * until released: the mount holds the version each open file reads, readers
   * hold theirs for the length of a read. Never fails.
   */
  holdVersion(record: Pick<ObjectRecord, 'chunks'>): Promise<VersionHold> {
    return this.session.holdVersion(record);
  }

  async deleteObject(bucket: string, key: string, expect?: Expect): Promise<ObjectRecord | undefined> {
    validateKey(key);
    await this.bucket(bucket);
    return this.timedOp(bucket, 'delete', () => this.outcomes.delete(bucket, key, expect));
  }

  async renameObject(bucket: string, from: string, to: string, replace = true): Promise<ObjectRecord> {
    validateKey(from);
    validateKey(to);
    await this.bucket(bucket);
    return this.timedOp(bucket, 'rename', () => this.outcomes.rename(bucket, from, to, replace));
  }

  /** Whether the metadata store can swap two names in one commit (RENAME_EXCHANGE). */
  get canExchange(): boolean {
    return this.meta.exchangeObjects !== undefined;
  }

  /** Swaps the objects at two keys in one commit; returns the records now at `a` and `b`. */
  async exchangeObjects(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]> {
    validateKey(a);
    validateKey(b);
    await this.bucket(bucket);
    return this.timedOp(bucket, 'rename', () => this.outcomes.exchange(bucket, a, b));
  }

  /** Moves every key under `fromPrefix` to `toPrefix` in one commit (a directory rename). */
  renamePrefix(bucket: string, fromPrefix: string, toPrefix: string): Promise<number> {
    return this.timedMeta('renamePrefix', () => this.outcomes.renamePrefix(bucket, fromPrefix, toPrefix));
  }

  /**
   * Commits a version: a new one (ObjectWriter, the mount's open files) or
   * one derived from an existing record (attributes, xattrs, new replica
   * sets). `fresh` names the chunks written for it and referenced by nothing
   * else: if its answer is lost and it turns out not to have landed, they are
   * queued as garbage (never deleted at once). Whoever gets CommitUnknownError
   * from here must not delete them either.
   */
  async commitRecord(draft: ObjectDraft, expect: Expect, fresh: readonly ChunkRef[] = []): Promise<ObjectRecord> {
    validateKey(draft.key);
    // Holds queued for these chunks land first: a hold written after the commit would outlive it.
    await this.session.settle(draft.chunks);
    const record = await this.timedMeta('putObject', () =>
      this.outcomes.put(draft, expect, fresh, (queued) => this.session.discarded(queued)),
    );
    if (fresh.length > 0) this.reportShortfall(record, fresh);
    return record;
  }

  /**
   * Warns when a version just committed holds chunks that missed replicas
   * (a backend down or failing): the put succeeded on W, and repair will copy
   * the rest, but until then one more failure may lose data. Runs once the
   * chunks' last replica writes finish, without holding the commit back;
   * close() waits for it, so a CLI put prints it before it exits.
   */
  private reportShortfall(record: ObjectRecord, fresh: readonly ChunkRef[]): void {
    const report = this.chunks.shortfalls.of(fresh.map((chunk) => chunk.id)).then((missed) => {
      if (missed.size === 0) return;
      const backends = [...new Set([...missed.values()].flat().map((m) => m.backend))];
      this.logger.warn(
        { bucket: record.bucket, key: record.key, underReplicated: missed.size, chunks: fresh.length, backends },
        `stored ${record.bucket}/${record.key} with ${missed.size} of ${fresh.length} chunk(s) under-replicated ` +
          `(${describeMissed(missed)}); repair will write the missing replicas`,
      );
    });
    this.shortfallReports.add(report);
    void report.finally(() => this.shortfallReports.delete(report));
  }

  async list(bucket: string, options: ListOptions = {}): Promise<ListPage> {
    await this.bucket(bucket);
    return this.timedOp(bucket, 'list', () => this.meta.list(bucket, options));
  }

  // ---- housekeeping ----

  /** Space for users' bytes across the backends (see usableCapacity); a backend that fails to answer counts nothing. */
  async capacity(): Promise<Capacity> {
    const infos = await Promise.all(
      this.backends.names.map((name) =>
        this.backends
          .backend(name)!
          .info()
          .catch(() => undefined),
      ),
    );
    return usableCapacity(infos, this.config.quorum.n);
  }

  /**
   * Deletes chunks that stopped being referenced more than the grace period
   * ago, except those a live session holds (the store checks as it hands them
   * out). Sessions whose lease expired are ended first, so what they held is
   * released and what they wrote and never committed is queued. A chunk whose
   * delete fails on some backend goes back on the queue.
   *
   * The grace period only guards the short window between a process reading a
   * record and recording its hold on it (and the batching of write holds).
   */
  async collectGarbage(
    options: { graceMs?: number; limit?: number } = {},
  ): Promise<{ deleted: number; retried: number; uploadsExpired: number }> {
    const graceMs = options.graceMs ?? this.config.gc.graceSeconds * 1000;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    let deleted = 0;
    let retried = 0;
    try {
      await this.meta.reapSessions();
    } catch {
      // Reaping is retried by the next run; holds of live sessions are checked regardless.
    }
    // Uploads abandoned for uploads.expireAfterSeconds: their parts join the queue now.
    let uploadsExpired = 0;
    try {
      uploadsExpired = await this.uploads.expireStale();
    } catch {
      // Retried by the next run, like reaping; the queue is worth emptying regardless.
    }
    while (deleted + retried < limit) {
      // +1: entries queued exactly grace ago are due (with grace 0, everything queued so far).
      const batch = await this.meta.takeGarbage(Date.now() - graceMs + 1, Math.min(500, limit - deleted - retried));
      if (batch.length === 0) break;
      const failed: typeof batch = [];
      await Promise.all(
        batch.map(async (entry) => {
          const failedOn = await this.chunks.delete(entry.chunk);
          if (failedOn.length > 0) failed.push(entry);
        }),
      );
      deleted += batch.length - failed.length;
      retried += failed.length;
      if (failed.length > 0) {
        await this.meta.queueGarbage(failed);
        break;
      }
    }
    this.collector.recordGarbageCollected(deleted);
    this.collector.setGarbageBacklog(await this.meta.garbageCount());
    this.collector.setLiveSessions((await this.meta.listSessions()).length);
    return { deleted, retried, uploadsExpired };
  }

  /**
   * Removes temporary files older than the grace period that writes cut short
   * left on local backends and storage nodes (see temporary-files.ts).
   */
  sweepTemporaryFiles(options: { graceMs?: number } = {}): Promise<TemporaryFileSweep> {
    return sweepTemporaryFiles(this.backends, options.graceMs ?? this.config.gc.graceSeconds * 1000);
  }

  /**
   * Housekeeping in long-running processes (mount, server): the persisted
   * repair backlog taken on now (and looked at again every
   * REPAIR_LOAD_INTERVAL_MS), the garbage queue every `intervalMs`, and
   * temporary files at the first round and then every
   * TEMPORARY_SWEEP_INTERVAL_MS (a sweep walks every fan-out directory).
   */
  startBackgroundGc(intervalMs = 60_000): void {
    if (this.gcTimer) return;
    // Repairs other processes recorded, or this one's predecessor did not finish.
    void this.chunks.repairs.load().catch((err) => this.logger.warn({ err }, `loading repairs: ${describeError(err)}`));
    this.gcTimer = setInterval(
      () =>
        void this.backgroundGc().catch((err) =>
          this.logger.warn({ err }, `background garbage collection failed: ${describeError(err)}`),
        ),
      intervalMs,
    );
    this.gcTimer.unref();
  }

  private async backgroundGc(): Promise<void> {
    const { deleted, retried } = await this.collectGarbage();
    if (deleted > 0 || retried > 0)
      this.logger.info({ deleted, retried }, `garbage collection deleted ${deleted} chunk(s), ${retried} to retry`);
    if (Date.now() - this.lastRepairLoad >= REPAIR_LOAD_INTERVAL_MS) {
      this.lastRepairLoad = Date.now();
      await this.chunks.repairs
        .load()
        .catch((err) => this.logger.warn({ err }, `loading repairs: ${describeError(err)}`));
    }
    if (Date.now() - this.lastTemporarySweep >= TEMPORARY_SWEEP_INTERVAL_MS) {
      this.lastTemporarySweep = Date.now();
      await this.sweepTemporaryFiles();
    }
  }

  /**
   * Takes on the repairs recorded in the metadata store by any process (a
   * replica a read found missing, a write a backend missed) and runs them,
   * page after page, until all that can run now have; repairs for backends
   * that are down stay recorded. For `lilio gc` and `lilio scrub --repair`;
   * long-running processes load them through startBackgroundGc.
   */
  async finishRepairs(): Promise<{ repaired: number; waiting: number }> {
    const repairs = this.chunks.repairs;
    const before = repairs.repaired;
    // A fresh process thinks every backend up: a probe first, so that repairs for one that is
    // down wait for it instead of each costing a deadline.
    await this.backends.probeAll();
    for (;;) {
      const { loaded, more } = await repairs.load();
      await repairs.whenIdle();
      if (!more || loaded === 0) break;
    }
    await repairs.flush();
    return { repaired: repairs.repaired - before, waiting: await this.meta.repairCount() };
  }

  /** Waits for background replica writes and repairs, then releases every resource. */
  async close(): Promise<void> {
    clearInterval(this.gcTimer);
    await this.chunks.drain();
    await Promise.allSettled([...this.shortfallReports]);
    await this.session.close();
    await this.chunks.repairs.settle();
    // What is left is in the store already, or written now; a store that cannot take it
    // loses only repairs the scrubber finds again.
    await this.chunks.repairs.close().catch(() => undefined);
    await this.chunks.close();
    await this.backends.close();
    await this.meta.close();
  }

  private async discard(chunks: ChunkRef[]): Promise<void> {
    const leftovers: ChunkRef[] = [];
    await Promise.all(
      chunks.map(async (chunk) => {
        if ((await this.chunks.delete(chunk)).length > 0) leftovers.push(chunk);
      }),
    );
    await this.session.discarded(chunks);
    // Whatever could not be deleted now is left to garbage collection, immediately eligible.
    if (leftovers.length > 0) await this.meta.queueGarbage(leftovers.map((chunk) => ({ chunk, queuedAt: 0 })));
  }

  private pool(chunkSize: number): BufferPool {
    let pool = this.pools.get(chunkSize);
    if (!pool) {
      pool = new BufferPool(chunkSize, sharedBuffersFor(chunkSize, this.config.writes.chunksInFlightTotal));
      this.pools.set(chunkSize, pool);
    }
    return pool;
  }

  /** The master key for an existing encrypted bucket: never a new one, which could not open it. */
  private masterKey(): Buffer {
    this.masterKeyCache ??= loadMasterKey(this.config.masterKey, { create: false });
    return this.masterKeyCache;
  }

  /**
   * The master key for a bucket about to be encrypted. A missing default key
   * file is generated only while no bucket is encrypted: otherwise it was
   * lost (deleted, a wrong LILIO_HOME), and a new key would silently leave
   * every encrypted bucket unreadable while new ones used the new key.
   */
  private async masterKeyForNewBucket(): Promise<Buffer> {
    if (this.masterKeyCache) return this.masterKeyCache;
    const encrypted = (await this.listBuckets()).some((bucket) => bucket.encrypted);
    this.masterKeyCache = loadMasterKey(this.config.masterKey, { create: !encrypted });
    return this.masterKeyCache;
  }

  private async timedOp<T>(bucket: string, op: ObjectOperation, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.collector.recordObjectOp(bucket, op, (performance.now() - started) / 1000, true);
      return result;
    } catch (err) {
      this.collector.recordObjectOp(bucket, op, (performance.now() - started) / 1000, false);
      throw err;
    }
  }

  private async timedMeta<T>(op: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await run();
    } finally {
      this.collector.recordMetaOp(op, (performance.now() - started) / 1000);
    }
  }
}
