/**
 * Metadata on etcd: any number of `lilio mount` and `lilio server` processes,
 * on any number of machines, sharing one namespace.
 *
 * Layout and limits: see etcd-keys.ts (directories have ids, so a level is one
 * range read and a directory rename one entry), etcd-blobs.ts (chunk lists
 * beyond one value's size, written before the commit that points at them) and
 * etcd-garbage.ts (garbage changes that do not fit a transaction go through a
 * journal applied in commit order). Every commit is one transaction whose
 * compares cover everything it read (etcd-edit.ts); versions are etcd
 * revisions, so they never repeat. Caches are driven by a watch (etcd-watch.ts).
 *
 * The master key never comes here: bucket records hold only wrapped data keys.
 */
import { isDeepStrictEqual } from 'node:util';
import { ExistsError, InvalidError, NotEmptyError, NotFoundError } from '../core/errors.js';
import type {
  BucketRecord,
  ChunkRef,
  GarbageEntry,
  ObjectAttrs,
  ObjectDraft,
  ObjectRecord,
  PartRecord,
  UploadRecord,
} from '../core/types.js';
import { batchLimit, updatedBucket } from './commit-rules.js';
import { BlobStore } from './etcd-blobs.js';
import { KeyCache } from './etcd-cache.js';
import { AmbiguousCommit, decode, EtcdConnection, type EtcdStoreOptions } from './etcd-client.js';
import { GarbageQueue } from './etcd-garbage.js';
import { EtcdKeys, encode, ROOT_DIR } from './etcd-keys.js';
import { TreeReader, type WalkItem } from './etcd-listing.js';
import { Locator } from './etcd-locate.js';
import { ObjectCommits } from './etcd-objects.js';
import { PathResolver, versionOf } from './etcd-paths.js';
import { recordOf } from './etcd-records.js';
import { RepairQueueKeys } from './etcd-repairs.js';
import { EtcdSessions } from './etcd-sessions.js';
import { TxnPlan } from './etcd-txn.js';
import { EtcdUploads } from './etcd-uploads.js';
import { ChangeFeed } from './etcd-watch.js';
import { isMarker, keySuccessor } from './keyspace.js';
import type {
  Expect,
  ListOptions,
  ListPage,
  MetadataStore,
  NameLookup,
  PartPage,
  RepairDone,
  RepairEntry,
  SessionInfo,
  SessionRecord,
  UploadListOptions,
  UploadPage,
} from './store.js';

const ITERATE_BATCH = 256;

export class EtcdMetadataStore implements MetadataStore {
  readonly type = 'etcd';
  private readonly conn: EtcdConnection;
  private readonly keys: EtcdKeys;
  private readonly paths: PathResolver;
  private readonly reader: TreeReader;
  private readonly blobs: BlobStore;
  private readonly garbage: GarbageQueue;
  private readonly sessions: EtcdSessions;
  private readonly locator: Locator;
  private readonly commits: ObjectCommits;
  private readonly feed: ChangeFeed;
  private readonly cache: KeyCache;
  private readonly repairs: RepairQueueKeys;
  private readonly uploads: EtcdUploads;
  /** Bucket records as last read, trusted only while the watch is up and has not reported a change. */
  private readonly bucketCache = new Map<string, BucketRecord>();
  private bucketEpoch = 0;
  private lastSweep = 0;

  constructor(options: EtcdStoreOptions) {
    this.conn = new EtcdConnection(options);
    this.keys = new EtcdKeys(options.prefix);
    const bucketPrefix = this.keys.buckets().key;
    this.feed = new ChangeFeed(
      this.conn.client,
      `${this.keys.root}/`,
      (key) => {
        this.cache.drop(key);
        if (key.subarray(0, bucketPrefix.length).equals(bucketPrefix)) this.forgetBuckets();
      },
      () => {
        this.cache.clear();
        this.forgetBuckets();
      },
    );
    this.cache = new KeyCache(this.feed);
    // Two paths (a rename) and a dozen other conditions must fit one transaction's compares.
    this.paths = new PathResolver(this.conn, this.keys, Math.floor((options.maxTxnOps - 16) / 2), this.cache);
    this.blobs = new BlobStore(this.conn, this.keys);
    this.repairs = new RepairQueueKeys(this.conn, this.keys.root);
    this.reader = new TreeReader(this.conn, this.keys, this.paths, this.blobs);
    this.garbage = new GarbageQueue(this.conn, this.keys, this.blobs, {
      chunksAt: async (bucket, key) => (await this.getObject(bucket, key))?.chunks.map((c) => c.id) ?? [],
      chunksUnder: (bucket, dirId) => this.reader.chunkIdsUnder(bucket, dirId),
      chunksOfPart: (uploadId, partNumber) => this.uploads.chunksOfPart(uploadId, partNumber),
    });
    this.uploads = new EtcdUploads(this.conn, this.keys, this.garbage, this.blobs, () => this.changed());
    this.sessions = new EtcdSessions(this.conn, this.keys, this.garbage);
    this.locator = new Locator(this.conn, this.keys, this.paths, this.blobs, this.garbage);
    this.commits = new ObjectCommits(
      this.conn,
      this.keys,
      this.locator,
      this.paths,
      this.blobs,
      this.garbage,
      (keys) => {
        for (const key of keys) this.cache.drop(key);
        this.feed.bump();
      },
    );
  }

  // ---- buckets ----

  async createBucket(bucket: BucketRecord): Promise<void> {
    const key = this.keys.bucket(bucket.name);
    await this.retryAmbiguous(async (ambiguous) => {
      const plan = new TxnPlan();
      plan.absent(key);
      plan.put(key, encode(bucket));
      const result = await this.conn.commit(plan.request());
      if (result.succeeded) return;
      // After a lost answer, finding exactly our record means it was ours that landed.
      if (ambiguous && isDeepStrictEqual(await this.readBucket(bucket.name), bucket)) return;
      throw new ExistsError(`bucket ${bucket.name} already exists`);
    });
    this.changed(bucket.name);
  }

  async getBucket(name: string): Promise<BucketRecord | undefined> {
    this.conn.ensureOpen();
    const cached = this.feed.connected ? this.bucketCache.get(name) : undefined;
    if (cached) return structuredClone(cached);
    const epoch = this.bucketEpoch;
    const record = await this.readBucket(name);
    if (record && this.feed.connected && epoch === this.bucketEpoch)
      this.bucketCache.set(name, structuredClone(record));
    return record;
  }

  async listBuckets(): Promise<BucketRecord[]> {
    const range = this.keys.buckets();
    const found = await this.conn.range({ key: range.key, range_end: range.end });
    return found.kvs.map((kv) => decode<BucketRecord>(kv.value, 'a bucket'));
  }

  async updateBucket(read: BucketRecord, attrs: ObjectAttrs): Promise<BucketRecord> {
    const key = this.keys.bucket(read.name);
    let written: BucketRecord | undefined;
    await this.retryAmbiguous(async (ambiguous) => {
      for (;;) {
        const kv = (await this.conn.range({ key })).kvs[0];
        const current = kv && decode<BucketRecord>(kv.value, `bucket ${read.name}`);
        // After a lost answer, finding exactly the record we sent means it was ours that landed.
        if (ambiguous && written && isDeepStrictEqual(current, written)) return;
        const record = updatedBucket(current, read, attrs);
        const plan = new TxnPlan();
        plan.unchanged(key, kv!.mod_revision);
        plan.put(key, encode(record));
        written = record;
        // A lost race re-reads: the checks above then tell what changed.
        if ((await this.conn.commit(plan.request())).succeeded) return;
      }
    });
    this.changed(read.name);
    return written!;
  }

  async deleteBucket(name: string): Promise<void> {
    const key = this.keys.bucket(name);
    const root = this.keys.entries(name, ROOT_DIR);
    await this.retryAmbiguous(async (ambiguous) => {
      for (;;) {
        const { responses } = await this.conn.read([
          { key },
          { key: root.key, range_end: root.end, limit: 1, keys_only: true },
        ]);
        const kv = responses[0]!.kvs[0];
        if (!kv) {
          if (ambiguous) return;
          throw new NotFoundError(`bucket ${name} does not exist`);
        }
        if (responses[1]!.kvs.length > 0) throw new NotEmptyError(`bucket ${name} is not empty`);
        const plan = new TxnPlan();
        plan.unchanged(key, kv.mod_revision);
        plan.emptyRange(root.key, root.end);
        plan.delete(key);
        if ((await this.conn.commit(plan.request())).succeeded) return;
      }
    });
    this.paths.forgetBucket(name);
    this.changed(name);
  }

  // ---- objects ----

  async getObject(bucket: string, key: string): Promise<ObjectRecord | undefined> {
    this.conn.ensureOpen();
    this.paths.checkDepth(key);
    return this.locator.record(bucket, await this.locator.locate(bucket, key));
  }

  async lookup(bucket: string, key: string): Promise<NameLookup> {
    this.conn.ensureOpen();
    this.paths.checkDepth(key);
    if (isMarker(key)) throw new InvalidError(`lookup takes a name, not a directory marker ("${key}")`);
    const found = await this.locator.locate(bucket, key, { dirToo: true });
    const dir = found.sameNamedDir;
    const result: NameLookup = { dir: dir !== undefined };
    const record = await this.locator.record(bucket, found);
    if (record) result.record = record;
    if (dir?.entry.m) {
      const version = versionOf(dir.mod, found.view.chain);
      const chunks = await this.locator.chunks(dir.entry.m.b, found.view.revision);
      result.marker = recordOf(bucket, `${key}/`, version, dir.entry.m.s, chunks, dir.entry.m.b.inline);
    }
    return result;
  }

  async putObject(draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    this.conn.ensureOpen();
    this.paths.checkDepth(draft.key);
    return this.commits.put(draft, expect);
  }

  async deleteObject(bucket: string, key: string, expect: Expect = 'any'): Promise<ObjectRecord | undefined> {
    this.conn.ensureOpen();
    this.paths.checkDepth(key);
    return this.commits.delete(bucket, key, expect);
  }

  async renameObject(bucket: string, from: string, to: string, options: { replace: boolean }): Promise<ObjectRecord> {
    this.conn.ensureOpen();
    this.paths.checkDepth(from);
    this.paths.checkDepth(to);
    return this.commits.rename(bucket, from, to, options.replace);
  }

  async exchangeObjects(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]> {
    this.conn.ensureOpen();
    this.paths.checkDepth(a);
    this.paths.checkDepth(b);
    return this.commits.exchange(bucket, a, b);
  }

  async renamePrefix(bucket: string, fromPrefix: string, toPrefix: string): Promise<number> {
    this.conn.ensureOpen();
    this.paths.checkDepth(fromPrefix);
    this.paths.checkDepth(toPrefix);
    return this.commits.renamePrefix(bucket, fromPrefix, toPrefix, (dirId, revision) =>
      this.reader.countUnder(bucket, dirId, revision),
    );
  }

  async list(bucket: string, options: ListOptions = {}): Promise<ListPage> {
    this.conn.ensureOpen();
    return options.delimiter === '/'
      ? this.reader.listLevel(bucket, options)
      : this.reader.listRecursive(bucket, options);
  }

  async *iterateObjects(bucket: string): AsyncIterable<ObjectRecord> {
    let start = '';
    for (;;) {
      this.conn.ensureOpen();
      const batch: WalkItem[] = [];
      for await (const item of this.reader.walk(bucket, '', start)) {
        batch.push(item);
        if (batch.length === ITERATE_BATCH) break;
      }
      yield* await this.reader.records(bucket, batch);
      if (batch.length < ITERATE_BATCH) return;
      start = keySuccessor(batch.at(-1)!.key);
    }
  }

  // ---- multipart uploads (see etcd-uploads.ts) ----

  createUpload(upload: UploadRecord): Promise<void> {
    this.conn.ensureOpen();
    return this.uploads.create(upload);
  }

  getUpload(id: string): Promise<UploadRecord | undefined> {
    this.conn.ensureOpen();
    return this.uploads.get(id);
  }

  listUploads(bucket: string, options: UploadListOptions = {}): Promise<UploadPage> {
    this.conn.ensureOpen();
    return this.uploads.list(bucket, options);
  }

  staleUploads(touchedBefore: number, limit: number): Promise<UploadRecord[]> {
    this.conn.ensureOpen();
    return this.uploads.stale(touchedBefore, limit);
  }

  uploadCount(): Promise<number> {
    this.conn.ensureOpen();
    return this.uploads.count();
  }

  putPart(part: PartRecord): Promise<void> {
    this.conn.ensureOpen();
    return this.uploads.putPart(part);
  }

  listParts(uploadId: string, options: { after?: number; limit?: number } = {}): Promise<PartPage> {
    this.conn.ensureOpen();
    return this.uploads.listParts(uploadId, options);
  }

  async completeUpload(uploadId: string, draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    this.conn.ensureOpen();
    this.paths.checkDepth(draft.key);
    return this.commits.put(draft, expect, this.uploads.completion(uploadId, draft));
  }

  abortUpload(uploadId: string): Promise<void> {
    this.conn.ensureOpen();
    return this.uploads.abort(uploadId);
  }

  // ---- garbage ----

  async takeGarbage(queuedBefore: number, limit: number): Promise<GarbageEntry[]> {
    this.conn.ensureOpen();
    batchLimit(limit);
    if (Date.now() - this.lastSweep > 10 * 60_000) {
      this.lastSweep = Date.now();
      await this.blobs.sweep();
    }
    const taken = await this.garbage.take(queuedBefore, limit);
    if (taken.length > 0) this.changed();
    return taken;
  }

  async queueGarbage(entries: GarbageEntry[]): Promise<void> {
    this.conn.ensureOpen();
    await this.garbage.queue(entries);
    if (entries.length > 0) this.changed();
  }

  async garbageCount(): Promise<number> {
    this.conn.ensureOpen();
    return this.garbage.count();
  }

  async peekGarbage(afterChunkId: string | undefined, limit: number): Promise<GarbageEntry[]> {
    this.conn.ensureOpen();
    batchLimit(limit);
    return this.garbage.peek(afterChunkId, limit);
  }

  // ---- sessions (see etcd-sessions.ts) ----

  openSession(info: SessionInfo, ttlMs: number): Promise<string> {
    this.conn.ensureOpen();
    return this.sessions.open(info, ttlMs);
  }

  renewSession(id: string, ttlMs: number, openFiles: number): Promise<boolean> {
    this.conn.ensureOpen();
    return this.sessions.renew(id, ttlMs, openFiles);
  }

  async closeSession(id: string): Promise<void> {
    this.conn.ensureOpen();
    await this.sessions.close(id);
    this.changed();
  }

  listSessions(): Promise<SessionRecord[]> {
    this.conn.ensureOpen();
    return this.sessions.list();
  }

  async reapSessions(): Promise<number> {
    this.conn.ensureOpen();
    const ended = await this.sessions.reap();
    if (ended > 0) this.changed();
    return ended;
  }

  holdWrites(session: string, chunks: ChunkRef[]): Promise<void> {
    this.conn.ensureOpen();
    return this.sessions.holdWrites(session, chunks);
  }

  releaseWrites(session: string, chunkIds: string[]): Promise<void> {
    this.conn.ensureOpen();
    return this.sessions.releaseWrites(session, chunkIds);
  }

  holdRead(session: string, chunkIds: string[]): Promise<string> {
    this.conn.ensureOpen();
    return this.sessions.holdRead(session, chunkIds);
  }

  releaseRead(session: string, holdId: string): Promise<void> {
    this.conn.ensureOpen();
    return this.sessions.releaseRead(session, holdId);
  }

  heldChunkIds(): Promise<Set<string>> {
    this.conn.ensureOpen();
    return this.sessions.heldChunkIds();
  }

  // ---- repairs ----

  async queueRepairs(entries: RepairEntry[]): Promise<void> {
    this.conn.ensureOpen();
    if (entries.length > 0) await this.repairs.queue(entries);
  }

  async clearRepairs(done: RepairDone[]): Promise<void> {
    this.conn.ensureOpen();
    if (done.length > 0) await this.repairs.clear(done);
  }

  async peekRepairs(afterChunkId: string | undefined, limit: number): Promise<RepairEntry[]> {
    this.conn.ensureOpen();
    batchLimit(limit);
    return this.repairs.peek(afterChunkId, limit);
  }

  async repairCount(): Promise<number> {
    this.conn.ensureOpen();
    return this.repairs.count();
  }

  generation(): number {
    return this.feed.generation();
  }

  async close(): Promise<void> {
    if (this.conn.isClosed) return;
    await this.garbage.idle();
    await this.feed.close();
    await this.conn.close();
  }

  // ---- internals ----

  private changed(bucket?: string): void {
    if (bucket !== undefined) this.cache.drop(this.keys.bucket(bucket));
    this.feed.bump();
  }

  private forgetBuckets(): void {
    this.bucketEpoch++;
    this.bucketCache.clear();
  }

  private async readBucket(name: string): Promise<BucketRecord | undefined> {
    const found = await this.conn.range({ key: this.keys.bucket(name) });
    const kv = found.kvs[0];
    return kv && decode<BucketRecord>(kv.value, `bucket ${name}`);
  }

  /** Runs a bucket commit, again after a lost answer (it is told so) until the deadline. */
  private async retryAmbiguous(run: (ambiguous: boolean) => Promise<void>): Promise<void> {
    this.conn.ensureOpen();
    this.forgetBuckets();
    const deadline = this.conn.deadline();
    let ambiguous = false;
    for (;;) {
      try {
        await run(ambiguous);
        this.forgetBuckets();
        return;
      } catch (err) {
        if (!(err instanceof AmbiguousCommit)) throw err;
        if (Date.now() >= deadline) throw err.failure;
        ambiguous = true;
      }
    }
  }
}
