import { ExistsError, NoSuchUploadError, NotEmptyError, NotFoundError, UnavailableError } from '../core/errors.js';
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
import {
  batchLimit,
  checkExchange,
  checkExpect,
  checkPrefixRename,
  orphanedChunks,
  pageLimit,
  updatedBucket,
} from './commit-rules.js';
import { compareKeys, dirsOf, isMarker, keySuccessor, levelOf, listStart, parentOf } from './keyspace.js';
import { SessionTable } from './memory-sessions.js';
import { clearRepair, mergeDone, mergeEntries, mergeRepair } from './repair-rules.js';
import type {
  Expect,
  ListOptions,
  ListPage,
  MetadataStore,
  ObjectSummary,
  PartPage,
  RepairDone,
  RepairEntry,
  SessionInfo,
  SessionRecord,
  UploadListOptions,
  UploadPage,
} from './store.js';
import { checkPartNumber, compareUploads, completionGarbage, uploadListed } from './upload-rules.js';

/**
 * Metadata held in this process only: for tests and throw-away runs. Every
 * method runs to completion without awaiting, so each is atomic with respect
 * to the others. Records are cloned on the way in and out so callers can never
 * change stored state by mutating what they hold.
 */

interface BucketState {
  record: BucketRecord;
  objects: Map<string, ObjectRecord>;
  /** Directory prefix -> number of keys under it, its own marker included. */
  dirs: Map<string, number>;
  /**
   * Level -> its entries in key order: non-marker keys and directory prefixes.
   * A listing with a delimiter reads one of these and nothing else, and a
   * recursive listing walks them depth first, which is key order again.
   */
  levels: Map<string, string[]>;
}

const ITERATE_BATCH = 256;

interface UploadState {
  record: UploadRecord;
  parts: Map<number, PartRecord>;
}

export class MemoryMetadataStore implements MetadataStore {
  readonly type = 'memory';
  private readonly buckets = new Map<string, BucketState>();
  private readonly garbage = new Map<string, GarbageEntry>();
  private readonly sessions = new SessionTable();
  private readonly repairs = new Map<string, RepairEntry>();
  private readonly uploads = new Map<string, UploadState>();
  private lastVersion = 0;
  private commits = 0;
  private closed = false;

  async createBucket(bucket: BucketRecord): Promise<void> {
    this.open();
    if (this.buckets.has(bucket.name)) throw new ExistsError(`bucket ${bucket.name} already exists`);
    const record = structuredClone(bucket);
    this.buckets.set(bucket.name, { record, objects: new Map(), dirs: new Map(), levels: new Map() });
    this.commits++;
  }

  async getBucket(name: string): Promise<BucketRecord | undefined> {
    this.open();
    const state = this.buckets.get(name);
    return state && structuredClone(state.record);
  }

  async listBuckets(): Promise<BucketRecord[]> {
    this.open();
    const names = [...this.buckets.keys()].sort(compareKeys);
    return names.map((name) => structuredClone(this.buckets.get(name)!.record));
  }

  async updateBucket(read: BucketRecord, attrs: ObjectAttrs): Promise<BucketRecord> {
    this.open();
    const state = this.buckets.get(read.name);
    const record = updatedBucket(state?.record, read, attrs);
    state!.record = structuredClone(record);
    this.commits++;
    return record;
  }

  async deleteBucket(name: string): Promise<void> {
    const state = this.bucket(name);
    if (state.objects.size > 0) throw new NotEmptyError(`bucket ${name} is not empty (${state.objects.size} objects)`);
    this.buckets.delete(name);
    this.commits++;
  }

  async getObject(bucket: string, key: string): Promise<ObjectRecord | undefined> {
    this.open();
    const record = this.buckets.get(bucket)?.objects.get(key);
    return record && structuredClone(record);
  }

  async putObject(draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    const record = this.commitDraft(draft, expect);
    this.commits++;
    return structuredClone(record);
  }

  async deleteObject(bucket: string, key: string, expect: Expect = 'any'): Promise<ObjectRecord | undefined> {
    this.open();
    const state = this.buckets.get(bucket);
    const current = state?.objects.get(key);
    checkExpect(bucket, key, current, expect);
    if (!state || !current) return undefined;
    this.retire(current, undefined);
    this.setRecord(state, key, undefined);
    this.commits++;
    return structuredClone(current);
  }

  async renameObject(bucket: string, from: string, to: string, options: { replace: boolean }): Promise<ObjectRecord> {
    const state = this.bucket(bucket);
    const source = state.objects.get(from);
    if (!source) throw new NotFoundError(`${bucket}/${from} does not exist`);
    if (from === to) return structuredClone(source);
    const target = state.objects.get(to);
    if (target && !options.replace) throw new ExistsError(`${bucket}/${to} already exists`);
    const moved: ObjectRecord = { ...source, key: to, version: ++this.lastVersion };
    if (target) this.retire(target, moved);
    this.rescue(moved);
    this.setRecord(state, from, undefined);
    this.setRecord(state, to, moved);
    this.commits++;
    return structuredClone(moved);
  }

  async exchangeObjects(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]> {
    const state = this.bucket(bucket);
    checkExchange(bucket, a, b);
    const first = state.objects.get(a);
    const second = state.objects.get(b);
    if (!first) throw new NotFoundError(`${bucket}/${a} does not exist`);
    if (!second) throw new NotFoundError(`${bucket}/${b} does not exist`);
    // Both keys exist before and after: no directory counts change.
    const atA: ObjectRecord = { ...second, key: a, version: ++this.lastVersion };
    const atB: ObjectRecord = { ...first, key: b, version: ++this.lastVersion };
    this.setRecord(state, a, atA);
    this.setRecord(state, b, atB);
    this.commits++;
    return [structuredClone(atA), structuredClone(atB)];
  }

  async renamePrefix(bucket: string, fromPrefix: string, toPrefix: string): Promise<number> {
    checkPrefixRename(fromPrefix, toPrefix);
    const state = this.bucket(bucket);
    const keys = [...this.keysFrom(state, '', fromPrefix, fromPrefix)];
    if (fromPrefix === toPrefix || keys.length === 0) return keys.length;
    const marker = state.objects.get(toPrefix);
    const underTarget = (state.dirs.get(toPrefix) ?? 0) - (marker ? 1 : 0);
    if (underTarget > 0) throw new NotEmptyError(`${bucket}/${toPrefix} is not empty (${underTarget} keys)`);
    if (marker) {
      this.retire(marker, state.objects.get(fromPrefix));
      this.setRecord(state, toPrefix, undefined);
    }
    for (const key of keys) {
      const source = state.objects.get(key)!;
      const moved: ObjectRecord = {
        ...source,
        key: toPrefix + key.slice(fromPrefix.length),
        version: ++this.lastVersion,
      };
      this.rescue(moved);
      this.setRecord(state, key, undefined);
      this.setRecord(state, moved.key, moved);
    }
    this.commits++;
    return keys.length;
  }

  async list(bucket: string, options: ListOptions = {}): Promise<ListPage> {
    const state = this.bucket(bucket);
    const prefix = options.prefix ?? '';
    const limit = pageLimit(options.limit);
    const start = listStart(prefix, options.startAfter);
    const entries: string[] = [];
    if (options.delimiter === '/') {
      const level = state.levels.get(levelOf(prefix)) ?? [];
      for (let i = lowerBound(level, start); i < level.length && entries.length <= limit; i++) {
        if (!level[i]!.startsWith(prefix)) break;
        entries.push(level[i]!);
      }
    } else {
      for (const key of this.keysFrom(state, '', start, prefix)) {
        entries.push(key);
        if (entries.length > limit) break;
      }
    }
    const more = entries.length > limit;
    if (more) entries.length = limit;
    const page: ListPage = { objects: [], prefixes: [] };
    for (const entry of entries) {
      if (options.delimiter === '/' && isMarker(entry)) page.prefixes.push(entry);
      else page.objects.push(summarize(state.objects.get(entry)!));
    }
    if (more) page.next = entries[entries.length - 1];
    return page;
  }

  async *iterateObjects(bucket: string): AsyncIterable<ObjectRecord> {
    let start = '';
    for (;;) {
      // Looked up again per batch: the bucket may go away while the caller works.
      const state = this.bucket(bucket);
      const batch: ObjectRecord[] = [];
      for (const key of this.keysFrom(state, '', start, '')) {
        batch.push(structuredClone(state.objects.get(key)!));
        if (batch.length === ITERATE_BATCH) break;
      }
      yield* batch;
      if (batch.length < ITERATE_BATCH) return;
      start = keySuccessor(batch[batch.length - 1]!.key);
    }
  }

  // ---- multipart uploads ----

  async createUpload(upload: UploadRecord): Promise<void> {
    this.bucket(upload.bucket);
    if (this.uploads.has(upload.id)) throw new ExistsError(`upload ${upload.id} already exists`);
    this.uploads.set(upload.id, { record: structuredClone(upload), parts: new Map() });
    this.commits++;
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    this.open();
    const state = this.uploads.get(id);
    return state && structuredClone(state.record);
  }

  async listUploads(bucket: string, options: UploadListOptions = {}): Promise<UploadPage> {
    this.bucket(bucket);
    const limit = pageLimit(options.limit);
    const listed = [...this.uploads.values()]
      .map((u) => u.record)
      .filter((u) => u.bucket === bucket && uploadListed(u, options))
      .sort(compareUploads);
    return { uploads: structuredClone(listed.slice(0, limit)), truncated: listed.length > limit };
  }

  async staleUploads(touchedBefore: number, limit: number): Promise<UploadRecord[]> {
    this.open();
    batchLimit(limit);
    const stale = [...this.uploads.values()].map((u) => u.record).filter((u) => u.touchedAt < touchedBefore);
    return structuredClone(stale.sort((a, b) => a.touchedAt - b.touchedAt).slice(0, limit));
  }

  async uploadCount(): Promise<number> {
    this.open();
    return this.uploads.size;
  }

  async putPart(part: PartRecord): Promise<void> {
    this.open();
    checkPartNumber(part.partNumber);
    const upload = this.upload(part.uploadId);
    const old = upload.parts.get(part.partNumber);
    const queuedAt = Date.now();
    if (old) for (const chunk of orphanedChunks(old.chunks, part.chunks)) this.enqueue({ chunk, queuedAt });
    this.rescueChunks(part.chunks);
    upload.parts.set(part.partNumber, structuredClone(part));
    upload.record.touchedAt = part.uploadedAt;
    this.commits++;
  }

  async listParts(uploadId: string, options: { after?: number; limit?: number } = {}): Promise<PartPage> {
    this.open();
    const limit = pageLimit(options.limit);
    const after = options.after ?? 0;
    const parts = [...this.upload(uploadId).parts.values()]
      .filter((p) => p.partNumber > after)
      .sort((a, b) => a.partNumber - b.partNumber);
    return { parts: structuredClone(parts.slice(0, limit)), truncated: parts.length > limit };
  }

  async completeUpload(uploadId: string, draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    this.open();
    const upload = this.upload(uploadId);
    const garbage = completionGarbage(upload.record, draft, [...upload.parts.values()]);
    const record = this.commitDraft(draft, expect);
    const queuedAt = Date.now();
    for (const chunk of garbage) this.enqueue({ chunk, queuedAt });
    this.uploads.delete(uploadId);
    this.commits++;
    return structuredClone(record);
  }

  async abortUpload(uploadId: string): Promise<void> {
    this.open();
    const upload = this.upload(uploadId);
    const queuedAt = Date.now();
    for (const part of upload.parts.values()) for (const chunk of part.chunks) this.enqueue({ chunk, queuedAt });
    this.uploads.delete(uploadId);
    this.commits++;
  }

  async takeGarbage(queuedBefore: number, limit: number): Promise<GarbageEntry[]> {
    this.open();
    batchLimit(limit);
    const held = this.sessions.held();
    const due = [...this.garbage.values()]
      .filter((entry) => entry.queuedAt < queuedBefore && !held.has(entry.chunk.id))
      .sort((a, b) => a.queuedAt - b.queuedAt || compareKeys(a.chunk.id, b.chunk.id))
      .slice(0, limit);
    for (const entry of due) this.garbage.delete(entry.chunk.id);
    if (due.length > 0) this.commits++;
    return due;
  }

  async queueGarbage(entries: GarbageEntry[]): Promise<void> {
    this.open();
    for (const entry of entries) this.enqueue(structuredClone(entry));
    if (entries.length > 0) this.commits++;
  }

  async garbageCount(): Promise<number> {
    this.open();
    return this.garbage.size;
  }

  async peekGarbage(afterChunkId: string | undefined, limit: number): Promise<GarbageEntry[]> {
    this.open();
    batchLimit(limit);
    return [...this.garbage.values()]
      .filter((entry) => afterChunkId === undefined || compareKeys(entry.chunk.id, afterChunkId) > 0)
      .sort((a, b) => compareKeys(a.chunk.id, b.chunk.id))
      .slice(0, limit)
      .map((entry) => structuredClone(entry));
  }

  async openSession(info: SessionInfo, ttlMs: number): Promise<string> {
    this.open();
    return this.sessions.open(info, ttlMs);
  }

  async renewSession(id: string, ttlMs: number, openFiles: number): Promise<boolean> {
    this.open();
    return this.sessions.renew(id, ttlMs, openFiles);
  }

  async closeSession(id: string): Promise<void> {
    this.open();
    this.queueHeld(this.sessions.close(id));
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.open();
    return this.sessions.list();
  }

  async reapSessions(): Promise<number> {
    this.open();
    const { ended, writes } = this.sessions.reap();
    this.queueHeld(writes);
    return ended;
  }

  async holdWrites(session: string, chunks: ChunkRef[]): Promise<void> {
    this.open();
    this.sessions.holdWrites(session, chunks);
    for (const chunk of chunks) this.garbage.delete(chunk.id);
  }

  async releaseWrites(session: string, chunkIds: string[]): Promise<void> {
    this.open();
    this.sessions.releaseWrites(session, chunkIds);
  }

  async holdRead(session: string, chunkIds: string[]): Promise<string> {
    this.open();
    return this.sessions.holdRead(session, chunkIds);
  }

  async releaseRead(session: string, holdId: string): Promise<void> {
    this.open();
    this.sessions.releaseRead(session, holdId);
  }

  async heldChunkIds(): Promise<Set<string>> {
    this.open();
    return this.sessions.held();
  }

  async queueRepairs(entries: RepairEntry[]): Promise<void> {
    this.open();
    for (const entry of mergeEntries(entries)) {
      this.repairs.set(entry.chunk.id, structuredClone(mergeRepair(this.repairs.get(entry.chunk.id), entry)));
    }
  }

  async clearRepairs(done: RepairDone[]): Promise<void> {
    this.open();
    for (const { chunkId, backends } of mergeDone(done)) {
      const held = this.repairs.get(chunkId);
      if (!held) continue;
      const left = clearRepair(held, backends);
      if (left) this.repairs.set(chunkId, left);
      else this.repairs.delete(chunkId);
    }
  }

  async peekRepairs(afterChunkId: string | undefined, limit: number): Promise<RepairEntry[]> {
    this.open();
    batchLimit(limit);
    return [...this.repairs.values()]
      .filter((entry) => afterChunkId === undefined || compareKeys(entry.chunk.id, afterChunkId) > 0)
      .sort((a, b) => compareKeys(a.chunk.id, b.chunk.id))
      .slice(0, limit)
      .map((entry) => structuredClone(entry));
  }

  async repairCount(): Promise<number> {
    this.open();
    return this.repairs.size;
  }

  generation(): number {
    return this.commits;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private open(): void {
    if (this.closed) throw new UnavailableError('the memory metadata store is closed');
  }

  private bucket(name: string): BucketState {
    this.open();
    const state = this.buckets.get(name);
    if (!state) throw new NotFoundError(`bucket ${name} does not exist`);
    return state;
  }

  private upload(id: string): UploadState {
    const upload = this.uploads.get(id);
    if (!upload) throw new NoSuchUploadError(`upload ${id} does not exist (completed, aborted or expired?)`);
    return upload;
  }

  /** putObject's change, without counting the commit (completeUpload makes it part of its own). */
  private commitDraft(draft: ObjectDraft, expect: Expect): ObjectRecord {
    const state = this.bucket(draft.bucket);
    const current = state.objects.get(draft.key);
    checkExpect(draft.bucket, draft.key, current, expect);
    const record = structuredClone(draft) as ObjectRecord;
    record.version = ++this.lastVersion;
    if (current) this.retire(current, record);
    this.rescue(record);
    this.setRecord(state, draft.key, record);
    return record;
  }

  /** Queues the chunks of a record on its way out that its successor (if any) does not keep. */
  private retire(old: ObjectRecord, successor: ObjectRecord | undefined): void {
    const queuedAt = Date.now();
    for (const chunk of orphanedChunks(old.chunks, successor?.chunks)) this.enqueue({ chunk, queuedAt });
  }

  /** Write holds that outlived their session were never committed: garbage now. */
  private queueHeld(chunks: ChunkRef[]): void {
    const queuedAt = Date.now();
    for (const chunk of chunks) this.enqueue({ chunk, queuedAt });
    if (chunks.length > 0) this.commits++;
  }

  /** A commit references these chunks: off the garbage queue, and their write holds end. */
  private rescue(record: ObjectRecord): void {
    this.rescueChunks(record.chunks);
  }

  private rescueChunks(chunks: readonly ChunkRef[]): void {
    this.sessions.committed(chunks);
    if (this.garbage.size === 0) return;
    for (const chunk of chunks) this.garbage.delete(chunk.id);
  }

  /** Puts or removes the record at `key`, keeping directory counts and levels in step. */
  private setRecord(state: BucketState, key: string, record: ObjectRecord | undefined): void {
    const existed = state.objects.has(key);
    if (record) state.objects.set(key, record);
    else state.objects.delete(key);
    if (!existed && record) this.link(state, key);
    if (existed && !record) this.unlink(state, key);
  }

  private enqueue(entry: GarbageEntry): void {
    const queued = this.garbage.get(entry.chunk.id);
    // Of two queuings of one chunk the later counts: reaping early is the one unsafe mistake.
    if (queued && queued.queuedAt > entry.queuedAt) entry = { chunk: entry.chunk, queuedAt: queued.queuedAt };
    this.garbage.set(entry.chunk.id, entry);
  }

  private link(state: BucketState, key: string): void {
    if (!isMarker(key)) insertSorted(levelEntries(state, parentOf(key)), key);
    for (const dir of dirsOf(key)) {
      const count = (state.dirs.get(dir) ?? 0) + 1;
      state.dirs.set(dir, count);
      if (count === 1) insertSorted(levelEntries(state, parentOf(dir)), dir);
    }
  }

  private unlink(state: BucketState, key: string): void {
    if (!isMarker(key)) removeSorted(state, parentOf(key), key);
    for (const dir of dirsOf(key)) {
      const count = state.dirs.get(dir)! - 1;
      if (count > 0) {
        state.dirs.set(dir, count);
      } else {
        state.dirs.delete(dir);
        removeSorted(state, parentOf(dir), dir);
      }
    }
  }

  /**
   * Keys (markers included) from `start` on, in key order, while they start
   * with `prefix`. Binary search at each level it descends, so resuming deep
   * into a large bucket costs its depth, not its size.
   */
  private *keysFrom(state: BucketState, level: string, start: string, prefix: string): Generator<string> {
    const entries = state.levels.get(level);
    if (!entries) return;
    let i = lowerBound(entries, start);
    // The directory sorting just before `start` still holds keys after it when `start` lies inside it.
    if (i > 0 && isMarker(entries[i - 1]!) && start.startsWith(entries[i - 1]!)) i--;
    for (; i < entries.length; i++) {
      const entry = entries[i]!;
      if (!entry.startsWith(prefix) && compareKeys(entry, prefix) > 0) return;
      if (!isMarker(entry)) {
        if (entry.startsWith(prefix)) yield entry;
        continue;
      }
      if (compareKeys(entry, start) >= 0 && state.objects.has(entry) && entry.startsWith(prefix)) yield entry;
      yield* this.keysFrom(state, entry, start, prefix);
    }
  }
}

function summarize(record: ObjectRecord): ObjectSummary {
  const { chunks: _chunks, inline: _inline, ...summary } = record;
  return structuredClone(summary);
}

function levelEntries(state: BucketState, level: string): string[] {
  let entries = state.levels.get(level);
  if (!entries) state.levels.set(level, (entries = []));
  return entries;
}

function lowerBound(entries: readonly string[], key: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(entries[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(entries: string[], key: string): void {
  entries.splice(lowerBound(entries, key), 0, key);
}

function removeSorted(state: BucketState, level: string, key: string): void {
  const entries = state.levels.get(level);
  if (!entries) return;
  const i = lowerBound(entries, key);
  if (entries[i] === key) entries.splice(i, 1);
  if (entries.length === 0) state.levels.delete(level);
}
