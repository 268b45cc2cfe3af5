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

/**
 * What a commit expects of the key's current record:
 * - `{ version }`: the record must exist with exactly that version (compare-and-set);
 * - `'absent'`: no record may exist (create-exclusive);
 * - `'any'`: last writer wins.
 * A failed expectation throws ConflictError and changes nothing.
 */
export type Expect = { version: number } | 'absent' | 'any';

/** An object as a listing returns it: everything but the chunk list and inline bytes. */
export type ObjectSummary = Omit<ObjectRecord, 'chunks' | 'inline'>;

export interface ListOptions {
  /** Only keys starting with this. */
  prefix?: string;
  /**
   * `'/'` groups keys below the next slash after the prefix into `prefixes`
   * (as S3 does); keys are otherwise listed recursively. Only '/' is supported.
   */
  delimiter?: '/';
  /** Resume after this key or prefix (the `next` of the previous page). */
  startAfter?: string;
  /** Page size; at most 10,000. Default 1,000. */
  limit?: number;
}

export interface ListPage {
  /** Objects at this level (with a delimiter, directory markers are reported as prefixes). */
  objects: ObjectSummary[];
  /** Common prefixes ("sub/dirs/"), with a delimiter only. */
  prefixes: string[];
  /** Set when more entries follow: pass it as `startAfter` for the next page. */
  next?: string;
}

/** What a name is: see MetadataStore.lookup. */
export interface NameLookup {
  /** The record at the key itself. */
  record?: ObjectRecord;
  /** The directory marker `key/`. */
  marker?: ObjectRecord;
  /** Whether `key/` is a directory: it has a marker or keys below it. */
  dir: boolean;
}

export interface UploadListOptions {
  /** Only uploads of keys starting with this. */
  prefix?: string;
  /** Resume after this upload: uploads of later keys, and of this key with a greater id (id absent: none of this key). */
  after?: { key: string; id?: string };
  /** Page size; at most 10,000. Default 1,000. */
  limit?: number;
}

/** Uploads in (key, id) order; `truncated` when more follow the last one. */
export interface UploadPage {
  uploads: UploadRecord[];
  truncated: boolean;
}

/** Parts in part number order, after `after`; `truncated` when more follow. */
export interface PartPage {
  parts: PartRecord[];
  truncated: boolean;
}

/** Who holds a session: a process using the engine (mount, server, CLI, admin). */
export interface SessionInfo {
  pid: number;
  host: string;
  /** The command or role: "mount /mnt/lilio", "server", "cli get", ... */
  role: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
}

/** A live session as listSessions reports it. */
export interface SessionRecord extends SessionInfo {
  id: string;
  /** When its lease runs out unless renewed, milliseconds since the epoch. */
  expiresAt: number;
  /** Files the process reported open at its last renewal. */
  openFiles: number;
  /** Distinct chunks it holds (being written, or read by its open files). */
  heldChunks: number;
}

/**
 * A chunk with replicas to rewrite: found missing or corrupt by a read, or
 * missed by a write. Kept in the store, so that a repair a process could not
 * finish (it stopped, or the backend was down) is finished by the next one.
 */
export interface RepairEntry {
  chunk: ChunkRef;
  /** The backends of its replica set that lack a good replica; never empty, no duplicates. */
  backends: string[];
  /** When the chunk was first queued, milliseconds since the epoch. */
  queuedAt: number;
}

/** Replicas a repair has dealt with: see MetadataStore.clearRepairs. */
export interface RepairDone {
  chunkId: string;
  backends: string[];
}

/**
 * The one contract every metadata store implements (memory, local SQLite,
 * etcd). All methods are atomic: a failure changes nothing.
 *
 * Chunk lifetime: whenever a commit replaces or removes a record, the chunks
 * of the old record that the new record does not reference are queued as
 * garbage in the same atomic step, and a commit removes from the garbage
 * queue any chunk it references. So no chunk is forgotten and no live chunk
 * is reaped, whichever process commits.
 *
 * Chunks in use: every process holds a session (see openSession) and records
 * against it the chunks it is writing and the chunks of the versions it reads.
 * takeGarbage never hands out a chunk a live session holds, and a commit ends
 * the write holds of the chunks it references in the same atomic step as it
 * takes them off the queue; so what a session still holds for writing when it
 * ends was never committed, and is queued.
 */
export interface MetadataStore {
  readonly type: string;

  createBucket(bucket: BucketRecord): Promise<void>; // ExistsError
  getBucket(name: string): Promise<BucketRecord | undefined>;
  listBuckets(): Promise<BucketRecord[]>;
  /**
   * Replaces the attributes of the bucket `read` was read from, and nothing
   * else: its data key, encryption and chunk size are fixed at creation.
   * Compare-and-set: NotFoundError if no bucket has that name, ConflictError
   * unless it is the same bucket (sameBucket: a bucket deleted and re-created
   * is another one) still at `read.version`. Returns the stored record with
   * its new version.
   */
  updateBucket(read: BucketRecord, attrs: ObjectAttrs): Promise<BucketRecord>;
  /** NotFoundError if missing, NotEmptyError if it holds any object. */
  deleteBucket(name: string): Promise<void>;

  getObject(bucket: string, key: string): Promise<ObjectRecord | undefined>;
  /**
   * Commits a new version of draft.key. Returns the stored record with its
   * new version. NotFoundError if the bucket does not exist.
   */
  putObject(draft: ObjectDraft, expect: Expect): Promise<ObjectRecord>;
  /** Removes the record; returns what was removed, or undefined if there was none (and expect allowed it). */
  deleteObject(bucket: string, key: string, expect?: Expect): Promise<ObjectRecord | undefined>;
  /**
   * Moves one record to a new key in one step (no chunk moves). NotFoundError
   * if `from` is missing; if `to` exists it is replaced when `replace` is true
   * (its chunks become garbage) and ExistsError otherwise.
   */
  renameObject(bucket: string, from: string, to: string, options: { replace: boolean }): Promise<ObjectRecord>;
  /**
   * Swaps the records at two keys (renameat2's RENAME_EXCHANGE) in one step:
   * each name then holds what the other held, with a new version. Both must
   * exist (NotFoundError); markers are not exchanged. Optional: a store
   * without it cannot swap atomically, and the mount answers EINVAL. Nothing
   * becomes garbage: each chunk list moves to the other key whole.
   * Returns the records now at `a` and at `b`.
   */
  exchangeObjects?(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]>;
  /**
   * Moves every key under `fromPrefix` (which ends with '/') to `toPrefix`, in
   * one step. NotEmptyError if any key exists under `toPrefix` other than the
   * marker `toPrefix` itself, which is replaced. Returns the number of keys moved.
   */
  renamePrefix(bucket: string, fromPrefix: string, toPrefix: string): Promise<number>;
  list(bucket: string, options?: ListOptions): Promise<ListPage>;
  /**
   * What `key` (not ending with '/') names, in one call: what getObject(key),
   * getObject(key + '/') and list({ prefix: key + '/', limit: 1 }) would
   * tell. Optional: a store that answers it in one round trip (etcd) offers it.
   */
  lookup?(bucket: string, key: string): Promise<NameLookup>;
  /** Every object of a bucket with its chunks, in key order (for scrub, gc, dump). */
  iterateObjects(bucket: string): AsyncIterable<ObjectRecord>;

  /**
   * Hands out (and removes from the queue) garbage queued before `queuedBefore`,
   * except chunks a live session holds, which stay queued: the holds are checked in
   * the same atomic step that takes an entry, so the answer is true when it is given.
   */
  takeGarbage(queuedBefore: number, limit: number): Promise<GarbageEntry[]>;
  /** Puts chunks (back) on the garbage queue, e.g. after a failed delete or an aborted write. */
  queueGarbage(entries: GarbageEntry[]): Promise<void>;
  /** Number of chunks waiting in the garbage queue. */
  garbageCount(): Promise<number>;
  /**
   * Read-only view of the garbage queue, in chunk id order, starting after
   * `afterChunkId` (page with the last id returned). Lets a dump include the
   * queue without consuming it, which takeGarbage + queueGarbage could not do
   * safely. Optional: without it, dumps leave the queue out.
   */
  peekGarbage?(afterChunkId: string | undefined, limit: number): Promise<GarbageEntry[]>;

  // ---- multipart uploads ----
  //
  // An upload owns its parts' chunks as a committed version owns its own: recording a part
  // takes its chunks off the garbage queue and ends their write holds, in its atomic step;
  // replacing a part, aborting the upload or completing it without a part queues the chunks
  // that nothing references any more, in the step that drops them.

  /** Records a new upload. NotFoundError if the bucket does not exist, ExistsError if the id is taken. */
  createUpload(upload: UploadRecord): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /** A bucket's uploads in (key, id) byte order. NotFoundError if the bucket does not exist. */
  listUploads(bucket: string, options?: UploadListOptions): Promise<UploadPage>;
  /** Uploads of every bucket whose touchedAt is before `touchedBefore` (for expiry), at most `limit`. */
  staleUploads(touchedBefore: number, limit: number): Promise<UploadRecord[]>;
  /** Number of uploads in progress. */
  uploadCount(): Promise<number>;
  /**
   * Records a part, replacing one of the same number (whose chunks the new one does not
   * reference become garbage), and sets the upload's touchedAt to part.uploadedAt.
   * NoSuchUploadError if the upload does not exist.
   */
  putPart(part: PartRecord): Promise<void>;
  /** Parts with their chunks, numbers above `after` (default 0), at most `limit` (default 1,000, max 10,000). NoSuchUploadError. */
  listParts(uploadId: string, options?: { after?: number; limit?: number }): Promise<PartPage>;
  /**
   * Completes an upload in one atomic step: commits `draft` as putObject(draft, expect) would,
   * queues as garbage the chunks of the upload's parts that the draft does not reference, and
   * removes the upload and its parts. NoSuchUploadError if the upload does not exist (or no
   * longer: completed or aborted), InvalidError if the draft is for another bucket or key,
   * InvalidPartError if the draft references a chunk that no part of the upload holds now
   * (a part was replaced meanwhile).
   */
  completeUpload(uploadId: string, draft: ObjectDraft, expect: Expect): Promise<ObjectRecord>;
  /** Removes an upload and its parts, queuing all their chunks as garbage. NoSuchUploadError if missing. */
  abortUpload(uploadId: string): Promise<void>;

  // ---- sessions and holds ----
  //
  // Garbage collection never deletes a chunk that a live session holds: takeGarbage
  // re-checks the holds in the same atomic step that takes a chunk off the queue, and
  // the orphan scan skips heldChunkIds(). Write holds are cleared by the commit that
  // references their chunks, in its own atomic step (as it rescues them from the queue),
  // so a write hold that outlives its session was never committed: it becomes garbage.

  /** Starts a session whose lease runs out `ttlMs` from now unless renewed; returns its id. */
  openSession(info: SessionInfo, ttlMs: number): Promise<string>;
  /**
   * Extends a live session's lease by `ttlMs` from now and records how many files
   * it has open. Returns false, changing nothing, if the session has expired or is
   * gone (its holds may already be released): the caller must open a new one.
   */
  renewSession(id: string, ttlMs: number, openFiles: number): Promise<boolean>;
  /** Ends a session: read holds vanish, write holds (never committed) are queued as garbage. */
  closeSession(id: string): Promise<void>;
  /** Live sessions (lease not expired), oldest first. */
  listSessions(): Promise<SessionRecord[]>;
  /**
   * Ends every session whose lease has expired, as closeSession would. Whichever
   * process collects garbage calls it. Returns how many sessions it ended.
   */
  reapSessions(): Promise<number>;
  /**
   * Records write holds: chunks the session sealed and has not committed yet. Also
   * takes them off the garbage queue (a session that lost its lease re-records
   * what it still holds). NotFoundError if the session is not live.
   */
  holdWrites(session: string, chunks: ChunkRef[]): Promise<void>;
  /** Drops write holds of chunks the session deleted itself (a discarded write). */
  releaseWrites(session: string, chunkIds: string[]): Promise<void>;
  /** Holds the chunks of a version the session reads; returns the hold's id. NotFoundError if not live. */
  holdRead(session: string, chunkIds: string[]): Promise<string>;
  releaseRead(session: string, holdId: string): Promise<void>;
  /** Every chunk id held, for writing or reading, by a live session. */
  heldChunkIds(): Promise<Set<string>>;

  /**
   * Queues replicas for repair. The queue holds one entry per chunk, so it
   * grows with the chunks under-replicated, never with how often they are
   * found so (a backend that stays down costs one entry per chunk it should
   * hold): an entry for a chunk already queued gains the backends it lacked
   * and keeps its first queuedAt.
   */
  queueRepairs(entries: RepairEntry[]): Promise<void>;
  /**
   * Takes backends off their chunk's entry (rewritten, or nothing left to
   * copy from); an entry goes with its last backend. Chunks or backends not
   * queued are ignored.
   */
  clearRepairs(done: RepairDone[]): Promise<void>;
  /** The queue in chunk id order, starting after `afterChunkId` (page with the last id returned). */
  peekRepairs(afterChunkId: string | undefined, limit: number): Promise<RepairEntry[]>;
  /** Number of chunks with replicas waiting for repair. */
  repairCount(): Promise<number>;

  /**
   * A number that changes whenever any process commits to this store. Cheap
   * enough to call on every open: caches compare it to decide whether they
   * may still trust what they hold.
   */
  generation(): number;

  close(): Promise<void>;
}
