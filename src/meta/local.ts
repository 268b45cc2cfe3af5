/**
 * The embedded metadata store: one SQLite file, DIR/lilio.db, shared by every
 * Lilio process on the machine (a mount, a server, CLI commands).
 *
 * Durability: WAL mode with synchronous=NORMAL by default. A process killed at
 * any moment (kill -9) never loses a committed transaction, because commit
 * returns only once the transaction is in the WAL file; a power cut or an OS
 * crash may lose the last few commits (never tear one), because NORMAL syncs
 * the WAL at checkpoints rather than on every commit. `synchronous: 'full'`
 * syncs on every commit and loses nothing, at a fraction of the commit rate.
 *
 * Concurrency: every mutation is one BEGIN IMMEDIATE transaction, so writers
 * queue on SQLite's write lock (up to the busy timeout, 10 s by default)
 * instead of failing half way through, and compare-and-set is a check inside
 * that transaction. Readers never wait for writers in WAL mode. Work that can
 * happen outside the lock (JSON encoding, parsing returned records) does.
 *
 * Threads: a write that would wait for the lock (held by another process),
 * or would run long, runs in a thread of its own with its own connection
 * (local-writer.ts), so neither stalls the thread that answers every FUSE
 * call; short writes with the lock free run at once on the caller's
 * connection (local-routing.ts says which), and so do reads. One class
 * serves both sides: the caller's instance routes the methods in WRITES.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import {
  CommitUnknownError,
  ExistsError,
  NoSuchUploadError,
  NotEmptyError,
  NotFoundError,
  UnavailableError,
} from '../core/errors.js';
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
  checkTtl,
  orphanedChunks,
  pageLimit,
  updatedBucket,
} from './commit-rules.js';
import { compareKeys, dirsOf, keySuccessor, levelOf, listStart, parentOf, prefixEnd } from './keyspace.js';
import { DEFAULT_BUSY_TIMEOUT_MS, openDatabase, type Synchronous, sqliteFailure } from './local-db.js';
import { prepareRepairStatements, type RepairStatements } from './local-repairs.js';
import { SENT, WriteRouting } from './local-routing.js';
import {
  type GarbageRow,
  KEY_CEILING,
  type ObjectRow,
  prepareStatements,
  type Statements,
  type SummaryRow,
} from './local-sql.js';
import { type PartRow, prepareUploadStatements, type UploadStatements } from './local-uploads.js';
import { LocalWriter, type WriterOptions } from './local-writer.js';
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
import { checkPartNumber, completionGarbage } from './upload-rules.js';

export interface LocalMetadataOptions {
  /** A directory; the database is DIR/lilio.db. Created when missing. */
  path: string;
  synchronous?: Synchronous;
  /** How long a commit waits for another process's transaction; default 10 s. */
  busyTimeoutMs?: number;
}

/** Chunk lists up to this many bytes are diffed in JavaScript; longer ones inside SQLite, in one statement. */
const SMALL_CHUNK_LIST = 16 * 1024;
/**
 * A commit of more chunks than this (64 MiB of a file at the default chunk
 * size, some 16 KiB of JSON), or a garbage batch this long, runs in the
 * writer thread: its cost grows with the list, and one hand-off is nothing
 * next to the data such a file carried.
 */
const LONG_CHUNK_LIST = 64;
const RESCUE_ONE_BY_ONE = 16;

/** iterateObjects reads this many records per query, fewer while records are large. */
const ITERATE_BATCH = 256;
const ITERATE_BYTES = 16 * 1024 * 1024;

/**
 * The methods that write: every one whose body calls write(). Each runs on the
 * caller's thread when it can and in the writer thread when it would wait or
 * run long (local-routing.ts). A write method added to the store needs its
 * name here, nothing else (and runsLong() where its work grows with its
 * input); one left out fails its first call, loudly.
 *
 * Reads always stay on the caller's thread, measured (load 11 on 2 cores): a
 * point read there costs 18-27 µs, one sent to the writer thread and back
 * 48-96 µs (the round trip alone is ~30 µs), and WAL never makes them wait.
 */
export const WRITES = [
  'createBucket',
  'updateBucket',
  'deleteBucket',
  'commitObject',
  'deleteObject',
  'renameObject',
  'exchangeObjects',
  'renamePrefix',
  'takeGarbage',
  'queueGarbage',
  'openSession',
  'renewSession',
  'closeSession',
  'reapSessions',
  'holdWrites',
  'releaseWrites',
  'holdRead',
  'releaseRead',
  'queueRepairs',
  'clearRepairs',
  'createUpload',
  'putPart',
  'commitUpload',
  'abortUpload',
] as const satisfies readonly (keyof LocalMetadataStore)[];

export class LocalMetadataStore implements MetadataStore {
  readonly type = 'local';
  /** The database file, for messages and tools. */
  readonly file: string;
  private readonly db: Database.Database;
  private readonly sql: Statements;
  private readonly repairSql: RepairStatements;
  private readonly uploadSql: UploadStatements;
  private readonly transaction: Database.Transaction<<T>(body: () => T) => T>;
  /** Commits made through this connection: PRAGMA data_version only counts other connections'. */
  private commits = 0;
  private closed = false;
  /** On the caller's side, the thread its writes may go to; undefined in that thread itself. */
  private readonly writer: LocalWriter | undefined;
  private readonly routing: WriteRouting | undefined;

  /** Opens the store for use: reads on this thread, writes here or in a writer thread (started when first needed). */
  static open(options: LocalMetadataOptions): LocalMetadataStore {
    const writer: WriterOptions = {
      path: options.path,
      synchronous: options.synchronous ?? 'normal',
      busyTimeoutMs: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    };
    const { db, file } = openDatabase(writer.path, writer.synchronous, writer.busyTimeoutMs);
    try {
      return new LocalMetadataStore(db, file, new LocalWriter(file, writer));
    } catch (err) {
      db.close();
      throw sqliteFailure(file, err);
    }
  }

  /** The writer thread's own instance (local-writer-worker.ts): every method runs here, on its connection. */
  static openWriter(options: WriterOptions): LocalMetadataStore {
    const { db, file } = openDatabase(options.path, options.synchronous, options.busyTimeoutMs);
    try {
      return new LocalMetadataStore(db, file, undefined);
    } catch (err) {
      db.close();
      throw sqliteFailure(file, err);
    }
  }

  private constructor(db: Database.Database, file: string, writer: LocalWriter | undefined) {
    this.db = db;
    this.file = file;
    this.sql = prepareStatements(db);
    this.repairSql = prepareRepairStatements(db);
    this.uploadSql = prepareUploadStatements(db);
    this.transaction = db.transaction(<T>(body: () => T): T => body());
    this.writer = writer;
    if (writer) {
      const noWait = db.prepare('PRAGMA busy_timeout = 0');
      const wait = db.prepare(`PRAGMA busy_timeout = ${db.pragma('busy_timeout', { simple: true })}`);
      const routing = new WriteRouting(
        writer,
        file,
        () => noWait.get(),
        () => wait.get(),
      );
      this.routing = routing;
      for (const name of WRITES) {
        const method = LocalMetadataStore.prototype[name] as (...args: unknown[]) => Promise<unknown>;
        Object.defineProperty(this, name, { value: (...args: unknown[]) => routing.call(this, name, method, args) });
      }
    }
  }

  async createBucket(bucket: BucketRecord): Promise<void> {
    this.write(() => {
      if (this.sql.bucketExists.get(bucket.name)) throw new ExistsError(`bucket ${bucket.name} already exists`);
      this.sql.insertBucket.run(bucket.name, JSON.stringify(bucket));
    });
  }

  async getBucket(name: string): Promise<BucketRecord | undefined> {
    const text = this.read(() => this.sql.getBucket.get(name));
    return text === undefined ? undefined : this.parse<BucketRecord>(text, `bucket ${name}`);
  }

  async listBuckets(): Promise<BucketRecord[]> {
    const texts = this.read(() => this.sql.listBuckets.all());
    return texts.map((text) => this.parse<BucketRecord>(text, 'a bucket'));
  }

  async updateBucket(read: BucketRecord, attrs: ObjectAttrs): Promise<BucketRecord> {
    return this.write(() => {
      const text = this.sql.getBucket.get(read.name);
      const current = text === undefined ? undefined : this.parse<BucketRecord>(text, `bucket ${read.name}`);
      const record = updatedBucket(current, read, attrs);
      this.sql.updateBucket.run(JSON.stringify(record), read.name);
      return record;
    });
  }

  async deleteBucket(name: string): Promise<void> {
    this.write(() => {
      this.requireBucket(name);
      if (this.sql.anyObject.get(name)) throw new NotEmptyError(`bucket ${name} is not empty`);
      this.sql.deleteBucket.run(name);
      this.sql.dropBucketDirs.run(name);
    });
  }

  async getObject(bucket: string, key: string): Promise<ObjectRecord | undefined> {
    const row = this.read(() => this.sql.getObject.get(bucket, key));
    return row && this.toRecord(bucket, row);
  }

  async putObject(draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    const version = await this.commitObject(draft, expect);
    return { ...draft, version } as ObjectRecord;
  }

  /**
   * putObject's transaction, returning only the new version: a long chunk
   * list then crosses to the writer thread once, and is not sent back.
   */
  async commitObject(draft: ObjectDraft, expect: Expect): Promise<number> {
    // bucket, key and version have columns of their own; a draft carrying a version has it ignored.
    const { bucket, key, version: _ignored, chunks, inline: _inline, ...fields } = draft as ObjectRecord;
    if (chunks.length > LONG_CHUNK_LIST) this.runsLong();
    const summary = JSON.stringify(fields);
    const chunkList = JSON.stringify(chunks);
    return this.write(() => this.commitDraft(draft, expect, summary, chunkList), { what: `put of ${bucket}/${key}` });
  }

  /** Inside a write: commits a draft whose summary and chunk list are encoded already; returns its version. */
  private commitDraft(draft: ObjectDraft, expect: Expect, summary: string, chunkList: string): number {
    const { bucket, key, chunks, inline } = draft;
    this.requireBucket(bucket);
    const current = this.sql.head.get(SMALL_CHUNK_LIST, bucket, key);
    checkExpect(bucket, key, current, expect);
    const version = this.sql.nextVersions.get(1)!;
    if (current) {
      this.retire(bucket, key, current.chunks, chunks, chunkList);
      this.sql.updateObject.run(version, summary, inline ?? null, chunkList, bucket, key);
    } else {
      this.sql.insertObject.run(bucket, key, parentOf(key), version, summary, inline ?? null, chunkList);
      this.addDirs(bucket, key);
    }
    this.rescue(chunkList, chunks);
    return version;
  }

  // ---- multipart uploads ----

  async createUpload(upload: UploadRecord): Promise<void> {
    const text = JSON.stringify(upload);
    this.write(() => {
      this.requireBucket(upload.bucket);
      if (this.uploadSql.get.get(upload.id) !== undefined) throw new ExistsError(`upload ${upload.id} already exists`);
      this.uploadSql.insert.run(upload.id, upload.bucket, upload.key, upload.touchedAt, text);
    });
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const text = this.read(() => this.uploadSql.get.get(id));
    return text === undefined ? undefined : this.parse<UploadRecord>(text, `upload ${id}`);
  }

  async listUploads(bucket: string, options: UploadListOptions = {}): Promise<UploadPage> {
    const limit = pageLimit(options.limit);
    const prefix = options.prefix ?? '';
    const after = options.after;
    const texts = this.read(() => {
      this.requireBucket(bucket);
      return this.uploadSql.page.all({
        bucket,
        key: after?.key ?? '',
        // Ids are hex: '~' sorts after every one of them, so "after the key" skips all its uploads.
        id: after ? (after.id ?? '~') : '~',
        from: prefix,
        to: prefixEnd(prefix) ?? KEY_CEILING,
        limit: limit + 1,
      });
    });
    const uploads = texts.slice(0, limit).map((text) => this.parse<UploadRecord>(text, 'an upload'));
    return { uploads, truncated: texts.length > limit };
  }

  async staleUploads(touchedBefore: number, limit: number): Promise<UploadRecord[]> {
    batchLimit(limit);
    const texts = this.read(() => this.uploadSql.stale.all(touchedBefore, limit));
    return texts.map((text) => this.parse<UploadRecord>(text, 'an upload'));
  }

  async uploadCount(): Promise<number> {
    return this.read(() => this.uploadSql.count.get()!);
  }

  async putPart(part: PartRecord): Promise<void> {
    checkPartNumber(part.partNumber);
    const { chunks, ...fields } = part;
    if (chunks.length > LONG_CHUNK_LIST) this.runsLong();
    const summary = JSON.stringify(fields);
    const chunkList = JSON.stringify(chunks);
    this.write(
      () => {
        const upload = this.requireUpload(part.uploadId);
        const old = this.uploadSql.getPartChunks.get(part.uploadId, part.partNumber);
        if (old !== undefined) {
          const queuedAt = Date.now();
          const replaced = this.parse<ChunkRef[]>(old, `part ${part.partNumber} of upload ${part.uploadId}`);
          for (const chunk of orphanedChunks(replaced, chunks))
            this.sql.enqueue.run(chunk.id, JSON.stringify(chunk), queuedAt);
        }
        this.uploadSql.putPart.run(part.uploadId, part.partNumber, summary, chunkList);
        this.rescue(chunkList, chunks);
        upload.touchedAt = part.uploadedAt;
        this.uploadSql.touch.run(part.uploadedAt, JSON.stringify(upload), part.uploadId);
      },
      { what: `part ${part.partNumber} of upload ${part.uploadId}` },
    );
  }

  async listParts(uploadId: string, options: { after?: number; limit?: number } = {}): Promise<PartPage> {
    const limit = pageLimit(options.limit);
    const rows = this.read(() => {
      this.requireUpload(uploadId);
      return this.uploadSql.partsFrom.all(uploadId, options.after ?? 0, limit + 1);
    }, true);
    const parts = rows.slice(0, limit).map((row) => this.toPart(row));
    return { parts, truncated: rows.length > limit };
  }

  async completeUpload(uploadId: string, draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    const version = await this.commitUpload(uploadId, draft, expect);
    return { ...draft, version } as ObjectRecord;
  }

  /** completeUpload's transaction, returning only the new version (as commitObject does). */
  async commitUpload(uploadId: string, draft: ObjectDraft, expect: Expect): Promise<number> {
    const { bucket: _b, key: _k, version: _ignored, chunks, inline: _i, ...fields } = draft as ObjectRecord;
    // Every part's chunk list is read and diffed: always a long write.
    this.runsLong();
    const summary = JSON.stringify(fields);
    const chunkList = JSON.stringify(chunks);
    return this.write(
      () => {
        const upload = this.requireUpload(uploadId);
        const parts = this.uploadSql.allChunks
          .all(uploadId)
          .map((text) => ({ chunks: this.parse<ChunkRef[]>(text, `a part of upload ${uploadId}`) }));
        const garbage = completionGarbage(upload, draft, parts);
        const version = this.commitDraft(draft, expect, summary, chunkList);
        const queuedAt = Date.now();
        for (const chunk of garbage) this.sql.enqueue.run(chunk.id, JSON.stringify(chunk), queuedAt);
        this.uploadSql.removeParts.run(uploadId);
        this.uploadSql.remove.run(uploadId);
        return version;
      },
      { what: `completion of upload ${uploadId} as ${draft.bucket}/${draft.key}` },
    );
  }

  async abortUpload(uploadId: string): Promise<void> {
    this.runsLong();
    this.write(() => {
      this.requireUpload(uploadId);
      const queuedAt = Date.now();
      for (const text of this.uploadSql.allChunks.all(uploadId)) {
        for (const chunk of this.parse<ChunkRef[]>(text, `a part of upload ${uploadId}`)) {
          this.sql.enqueue.run(chunk.id, JSON.stringify(chunk), queuedAt);
        }
      }
      this.uploadSql.removeParts.run(uploadId);
      this.uploadSql.remove.run(uploadId);
    });
  }

  async deleteObject(bucket: string, key: string, expect: Expect = 'any'): Promise<ObjectRecord | undefined> {
    let row: ObjectRow | undefined;
    const removed = this.write(
      () => {
        row = this.sql.getObject.get(bucket, key);
        checkExpect(bucket, key, row, expect);
        if (!row) return undefined;
        this.retire(bucket, key, row.chunks.length <= SMALL_CHUNK_LIST ? row.chunks : null, []);
        this.sql.removeObject.run(bucket, key);
        this.pruneDirs(bucket, key);
        return row;
      },
      { what: `delete of ${bucket}/${key}`, subject: () => row && this.toRecord(bucket, row) },
    );
    return removed && this.toRecord(bucket, removed);
  }

  async renameObject(bucket: string, from: string, to: string, options: { replace: boolean }): Promise<ObjectRecord> {
    let source: ObjectRow | undefined;
    const moved = this.write(
      () => {
        this.requireBucket(bucket);
        source = this.sql.getObject.get(bucket, from);
        if (!source) throw new NotFoundError(`${bucket}/${from} does not exist`);
        // Its chunk list is rescued from the garbage queue and parsed for the answer.
        if (source.chunks.length > SMALL_CHUNK_LIST) this.runsLong();
        if (from === to) return source;
        const target = this.sql.head.get(SMALL_CHUNK_LIST, bucket, to);
        if (target && !options.replace) throw new ExistsError(`${bucket}/${to} already exists`);
        const version = this.sql.nextVersions.get(1)!;
        if (target) {
          this.retire(bucket, to, target.chunks, source.chunks);
          this.sql.removeObject.run(bucket, to);
        }
        this.sql.moveObject.run(to, parentOf(to), version, bucket, from);
        this.addDirs(bucket, to);
        this.pruneDirs(bucket, from);
        this.rescue(source.chunks);
        return { ...source, key: to, version };
      },
      { what: `rename of ${bucket}/${from} to ${to}`, subject: () => source && this.toRecord(bucket, source) },
    );
    return this.toRecord(bucket, moved);
  }

  async exchangeObjects(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]> {
    checkExchange(bucket, a, b);
    const swapped = this.write(
      () => {
        this.requireBucket(bucket);
        const first = this.sql.getObject.get(bucket, a);
        const second = this.sql.getObject.get(bucket, b);
        if (!first) throw new NotFoundError(`${bucket}/${a} does not exist`);
        if (!second) throw new NotFoundError(`${bucket}/${b} does not exist`);
        if (first.chunks.length > SMALL_CHUNK_LIST || second.chunks.length > SMALL_CHUNK_LIST) this.runsLong();
        const version = this.sql.nextVersions.get(2)!;
        // Through a name no key can have (keys never hold NUL): the primary key forbids a direct swap.
        const parking = `${a}\u0000exchange`;
        this.sql.moveObject.run(parking, parentOf(a), version - 1, bucket, a);
        this.sql.moveObject.run(a, parentOf(a), version - 1, bucket, b);
        this.sql.moveObject.run(b, parentOf(b), version, bucket, parking);
        // Both keys exist before and after: the directory table is unchanged.
        return [
          { ...second, key: a, version: version - 1 },
          { ...first, key: b, version },
        ] as [ObjectRow, ObjectRow];
      },
      { what: `exchange of ${bucket}/${a} and ${b}` },
    );
    return [this.toRecord(bucket, swapped[0]), this.toRecord(bucket, swapped[1])];
  }

  async renamePrefix(bucket: string, fromPrefix: string, toPrefix: string): Promise<number> {
    checkPrefixRename(fromPrefix, toPrefix);
    // Moves every key under the prefix: a directory of any size.
    this.runsLong();
    return this.write(
      () => {
        this.requireBucket(bucket);
        const fromEnd = prefixEnd(fromPrefix) ?? KEY_CEILING;
        const toEnd = prefixEnd(toPrefix) ?? KEY_CEILING;
        const keys = this.sql.rangeKeys.all(bucket, fromPrefix, fromEnd, -1);
        if (fromPrefix === toPrefix || keys.length === 0) return keys.length;
        const blocker = this.sql.rangeKeys.get(bucket, keySuccessor(toPrefix), toEnd, 1);
        if (blocker !== undefined) throw new NotEmptyError(`${bucket}/${toPrefix} is not empty (holds ${blocker})`);

        const marker = this.sql.head.get(SMALL_CHUNK_LIST, bucket, toPrefix);
        if (marker) {
          // The target's marker gives way to the moved marker, if there is one.
          const heir = keys[0] === fromPrefix ? this.sql.getObject.get(bucket, fromPrefix)!.chunks : '[]';
          this.retire(bucket, toPrefix, marker.chunks, heir);
          this.sql.removeObject.run(bucket, toPrefix);
        }
        let version = this.sql.nextVersions.get(keys.length)! - keys.length;
        for (const key of keys) {
          const moved = toPrefix + key.slice(fromPrefix.length);
          this.sql.moveObject.run(moved, parentOf(moved), ++version, bucket, key);
        }
        // Directories strictly inside move as a block: nothing exists strictly inside the target.
        this.sql.moveDirsUnder.run({ bucket, from: fromPrefix, to: toPrefix, end: fromEnd });
        this.addDirs(bucket, toPrefix);
        this.pruneDirs(bucket, fromPrefix);
        if (this.sql.anyGarbage.get()) this.sql.rescueRange.run(bucket, toPrefix, toEnd);
        return keys.length;
      },
      { what: `rename of ${bucket}/${fromPrefix} to ${toPrefix}` },
    );
  }

  async list(bucket: string, options: ListOptions = {}): Promise<ListPage> {
    const prefix = options.prefix ?? '';
    const limit = pageLimit(options.limit);
    const start = listStart(prefix, options.startAfter);
    const end = prefixEnd(prefix) ?? KEY_CEILING;
    if (options.delimiter !== '/') {
      const rows = this.read(() => {
        this.requireBucket(bucket);
        return this.sql.rangeSummaries.all(bucket, start, end, limit + 1);
      });
      const page: ListPage = { objects: [], prefixes: [] };
      for (let i = 0; i < rows.length && i < limit; i++) {
        const [key, version, summary] = rows[i]!;
        page.objects.push(this.toSummary(bucket, key, version, summary));
      }
      if (rows.length > limit) page.next = rows[limit - 1]![0];
      return page;
    }
    const level = levelOf(prefix);
    // One read transaction, so the objects and the directories come from the same snapshot.
    const [rows, dirs] = this.read(() => {
      this.requireBucket(bucket);
      return [
        this.sql.levelSummaries.all(bucket, level, start, end, limit + 1),
        this.sql.levelDirs.all(bucket, level, start, end, limit + 1),
      ] as const;
    }, true);
    return this.mergeLevel(bucket, rows, dirs, limit);
  }

  async *iterateObjects(bucket: string): AsyncIterable<ObjectRecord> {
    let start = '';
    let batch = ITERATE_BATCH;
    for (;;) {
      const rows = this.read(() => {
        this.requireBucket(bucket);
        return this.sql.rangeRecords.all(bucket, start, batch);
      });
      let bytes = 0;
      for (const row of rows) {
        bytes += row.chunks.length + (row.inline?.length ?? 0);
        yield this.toRecord(bucket, row);
      }
      if (rows.length < batch) return;
      start = keySuccessor(rows[rows.length - 1]!.key);
      // Chunk lists of huge objects run to megabytes: hold fewer of them at once.
      batch = bytes > ITERATE_BYTES ? Math.max(1, batch >> 1) : Math.min(ITERATE_BATCH, batch * 2);
    }
  }

  async takeGarbage(queuedBefore: number, limit: number): Promise<GarbageEntry[]> {
    batchLimit(limit);
    this.runsLong(); // a batch, for a background task that waits for nobody
    const rows = this.write(() => this.sql.takeGarbage.all({ before: queuedBefore, now: Date.now(), limit }));
    return rows.map((row) => this.toGarbage(row)).sort((a, b) => a.queuedAt - b.queuedAt);
  }

  async queueGarbage(entries: GarbageEntry[]): Promise<void> {
    if (entries.length === 0) return;
    if (entries.length > LONG_CHUNK_LIST) this.runsLong();
    this.write(() => {
      for (const { chunk, queuedAt } of entries) this.sql.enqueue.run(chunk.id, JSON.stringify(chunk), queuedAt);
    });
  }

  async garbageCount(): Promise<number> {
    return this.read(() => this.sql.garbageCount.get()!);
  }

  async peekGarbage(afterChunkId: string | undefined, limit: number): Promise<GarbageEntry[]> {
    batchLimit(limit);
    const rows = this.read(() => this.sql.peekGarbage.all(afterChunkId ?? '', limit));
    return rows.map((row) => this.toGarbage(row));
  }

  async openSession(info: SessionInfo, ttlMs: number): Promise<string> {
    checkTtl(ttlMs);
    const id = randomBytes(8).toString('hex');
    const text = JSON.stringify(info);
    this.write(() => this.sql.insertSession.run(id, text, Date.now() + ttlMs));
    return id;
  }

  async renewSession(id: string, ttlMs: number, openFiles: number): Promise<boolean> {
    checkTtl(ttlMs);
    const now = Date.now();
    return this.write(() => this.sql.renewSession.run(now + ttlMs, openFiles, id, now).changes > 0);
  }

  async closeSession(id: string): Promise<void> {
    this.write(() => this.endSession(id, Date.now()));
  }

  async listSessions(): Promise<SessionRecord[]> {
    const rows = this.read(() => this.sql.listSessions.all(Date.now()));
    return rows
      .map((row) => ({
        ...this.parse<SessionInfo>(row.info, `session ${row.id}`),
        id: row.id,
        expiresAt: row.expires_at,
        openFiles: row.open_files,
        heldChunks: row.held,
      }))
      .sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1));
  }

  async reapSessions(): Promise<number> {
    const now = Date.now();
    return this.write(() => {
      const expired = this.sql.expiredSessions.all(now);
      for (const id of expired) this.endSession(id, now);
      return expired.length;
    });
  }

  async holdWrites(session: string, chunks: ChunkRef[]): Promise<void> {
    if (chunks.length === 0) return;
    const rows = chunks.map((chunk) => [chunk.id, JSON.stringify(chunk)] as const);
    this.write(() => {
      this.requireSession(session);
      const queued = this.sql.anyGarbage.get();
      for (const [id, text] of rows) {
        this.sql.holdWrite.run(id, session, text);
        if (queued) this.sql.rescueChunk.run(id);
      }
    });
  }

  async releaseWrites(session: string, chunkIds: string[]): Promise<void> {
    if (chunkIds.length === 0) return;
    this.write(() => {
      for (const id of chunkIds) this.sql.releaseWrite.run(id, session);
    });
  }

  async holdRead(session: string, chunkIds: string[]): Promise<string> {
    const hold = randomBytes(8).toString('hex');
    this.write(() => {
      this.requireSession(session);
      for (const id of chunkIds) this.sql.holdRead.run(id, session, hold);
    });
    return hold;
  }

  async releaseRead(session: string, holdId: string): Promise<void> {
    this.write(() => this.sql.releaseRead.run(session, holdId));
  }

  async heldChunkIds(): Promise<Set<string>> {
    const now = Date.now();
    return new Set(this.read(() => this.sql.heldChunks.all(now, now), true));
  }

  async queueRepairs(entries: RepairEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const merged = mergeEntries(entries);
    this.write(() => {
      for (const entry of merged) {
        const held = this.repairSql.get.get(entry.chunk.id);
        const next = mergeRepair(held === undefined ? undefined : this.parse<RepairEntry>(held, 'a repair'), entry);
        this.repairSql.put.run(entry.chunk.id, JSON.stringify(next));
      }
    });
  }

  async clearRepairs(done: RepairDone[]): Promise<void> {
    if (done.length === 0) return;
    const merged = mergeDone(done);
    this.write(() => {
      for (const { chunkId, backends } of merged) {
        const held = this.repairSql.get.get(chunkId);
        if (held === undefined) continue;
        const left = clearRepair(this.parse<RepairEntry>(held, 'a repair'), backends);
        if (left) this.repairSql.put.run(chunkId, JSON.stringify(left));
        else this.repairSql.remove.run(chunkId);
      }
    });
  }

  async peekRepairs(afterChunkId: string | undefined, limit: number): Promise<RepairEntry[]> {
    batchLimit(limit);
    const rows = this.read(() => this.repairSql.peek.all(afterChunkId ?? '', limit));
    return rows.map((row) => this.parse<RepairEntry>(row, 'a repair'));
  }

  async repairCount(): Promise<number> {
    return this.read(() => this.repairSql.count.get()!);
  }

  /** Other connections' commits move data_version, ours move `commits`: the sum moves on either. */
  generation(): number {
    return this.read(() => this.sql.dataVersion.get()!) + this.commits;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Writes already sent finish first (see LocalWriter.close); reads are over: they never wait.
    await this.writer?.close();
    this.db.close();
  }

  /**
   * One BEGIN IMMEDIATE transaction: waits for the write lock up front, so it
   * never fails half way on a busy lock. An object commit (`commit` given)
   * that fails in COMMIT itself, other than on a lock (SQLite left the
   * transaction open and it was rolled back), is CommitUnknownError: an I/O
   * error there may come after the WAL frames were written, which a later
   * recovery of the file can bring back.
   */
  private write<T>(body: () => T, commit?: { what: string; subject?: () => ObjectRecord | undefined }): T {
    this.ensureOpen();
    let bodyDone = false;
    try {
      const run = () =>
        this.transaction.immediate(() => {
          const value = body();
          bodyDone = true;
          return value;
        }) as T;
      const result = this.routing ? this.routing.transact(run) : run();
      this.commits++;
      return result;
    } catch (err) {
      if (err === SENT) throw err;
      const failure = sqliteFailure(this.file, err);
      if (!commit || !bodyDone || lockFailure(err)) throw failure;
      const subject = commit.subject?.();
      throw new CommitUnknownError(`${commit.what}: committing to ${this.file} failed: ${failure.message}`, {
        cause: err,
        ...(subject ? { subject } : {}),
      });
    }
  }

  /**
   * Said by a write before work that grows with its input (a long chunk list,
   * a whole directory): on the caller's thread, the call goes to the writer
   * thread instead (nothing written yet, or rolled back); there, nothing.
   */
  private runsLong(): void {
    this.routing?.runsLong();
  }

  private read<T>(body: () => T, snapshot = false): T {
    this.ensureOpen();
    try {
      return snapshot ? (this.transaction.deferred(body) as T) : body();
    } catch (err) {
      throw sqliteFailure(this.file, err);
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw new UnavailableError(`metadata database ${this.file} is closed`);
  }

  private requireSession(id: string): void {
    if (!this.sql.liveSession.get(id, Date.now())) throw new NotFoundError(`session ${id} has expired or was closed`);
  }

  /** Inside a write: read holds vanish, write holds (never committed) become garbage, the session goes. */
  private endSession(id: string, now: number): void {
    this.sql.queueWriteHolds.run(now, id);
    this.sql.dropWriteHolds.run(id);
    this.sql.dropReadHolds.run(id);
    this.sql.deleteSession.run(id);
  }

  private requireUpload(id: string): UploadRecord {
    const text = this.uploadSql.get.get(id);
    if (text === undefined) throw new NoSuchUploadError(`upload ${id} does not exist (completed, aborted or expired?)`);
    return this.parse<UploadRecord>(text, `upload ${id}`);
  }

  private toPart(row: PartRow): PartRecord {
    const part = this.parse<PartRecord>(row.summary, 'a part');
    part.chunks = this.parse<ChunkRef[]>(row.chunks, `chunks of part ${part.partNumber}`);
    return part;
  }

  private requireBucket(name: string): void {
    if (!this.sql.bucketExists.get(name)) throw new NotFoundError(`bucket ${name} does not exist`);
  }

  /**
   * Queues the chunks of the record at (bucket, key), about to be replaced or
   * removed, that its successor does not keep. `oldChunks` is its chunk list,
   * or null when that is too long to bring into JavaScript: SQLite diffs it
   * then. The successor comes as parsed chunks, or as JSON text parsed only if
   * needed, and `successorText` is its JSON when the caller has it at hand.
   */
  private retire(
    bucket: string,
    key: string,
    oldChunks: string | null,
    successor: readonly ChunkRef[] | string,
    successorText = typeof successor === 'string' ? successor : JSON.stringify(successor),
  ): void {
    if (oldChunks === '[]') return;
    const now = Date.now();
    if (oldChunks === null) {
      this.runsLong();
      this.sql.retireChunks.run({ bucket, key, successor: successorText, now });
      return;
    }
    const old = this.parse<ChunkRef[]>(oldChunks, `chunks of ${bucket}/${key}`);
    const kept = typeof successor === 'string' ? this.parse<ChunkRef[]>(successor, 'a chunk list') : successor;
    for (const chunk of orphanedChunks(old, kept)) this.sql.enqueue.run(chunk.id, JSON.stringify(chunk), now);
  }

  /**
   * Takes the chunks a commit references off the garbage queue and ends their
   * write holds (they are committed now); `chunks` is `chunkList` parsed, if at hand.
   */
  private rescue(chunkList: string, chunks?: readonly ChunkRef[]): void {
    if (chunkList === '[]') return;
    const queued = this.sql.anyGarbage.get();
    const held = this.sql.anyWriteHold.get();
    if (!queued && !held) return;
    if (chunks && chunks.length <= RESCUE_ONE_BY_ONE) {
      for (const chunk of chunks) {
        if (queued) this.sql.rescueChunk.run(chunk.id);
        if (held) this.sql.clearWriteHold.run(chunk.id);
      }
      return;
    }
    if (queued) this.sql.rescueChunks.run(chunkList);
    if (held) this.sql.clearWriteHolds.run(chunkList);
  }

  /** Every directory `key` lives in (a marker: itself too) exists after this. */
  private addDirs(bucket: string, key: string): void {
    for (const dir of dirsOf(key)) this.sql.addDir.run(bucket, dir, parentOf(dir));
  }

  /**
   * After `key` left: drops the directories it lived in that hold no key any
   * more, deepest first. A directory that still holds a key keeps every
   * directory above it alive too, so the walk stops there: usually one probe.
   */
  private pruneDirs(bucket: string, key: string): void {
    const dirs = dirsOf(key);
    for (let i = dirs.length - 1; i >= 0; i--) {
      const dir = dirs[i]!;
      if (this.sql.rangeKeys.get(bucket, dir, prefixEnd(dir) ?? KEY_CEILING, 1) !== undefined) return;
      this.sql.dropDir.run(bucket, dir);
    }
  }

  /** Objects and directories of one level, merged in key order into one page. */
  private mergeLevel(bucket: string, rows: SummaryRow[], dirs: string[], limit: number): ListPage {
    const page: ListPage = { objects: [], prefixes: [] };
    let i = 0;
    let j = 0;
    let last = '';
    for (let n = 0; n < limit && (i < rows.length || j < dirs.length); n++) {
      if (i >= rows.length || (j < dirs.length && compareKeys(dirs[j]!, rows[i]![0]) < 0)) {
        last = dirs[j++]!;
        page.prefixes.push(last);
      } else {
        const [key, version, summary] = rows[i++]!;
        last = key;
        page.objects.push(this.toSummary(bucket, key, version, summary));
      }
    }
    if (i < rows.length || j < dirs.length) page.next = last;
    return page;
  }

  private toSummary(bucket: string, key: string, version: number, text: string): ObjectSummary {
    // Filled in place rather than spread into a new object: listings do this for every entry.
    const summary = this.parse<ObjectSummary>(text, `${bucket}/${key}`);
    summary.bucket = bucket;
    summary.key = key;
    summary.version = version;
    return summary;
  }

  private toRecord(bucket: string, row: ObjectRow): ObjectRecord {
    const record = this.toSummary(bucket, row.key, row.version, row.summary) as ObjectRecord;
    record.chunks = this.parse<ChunkRef[]>(row.chunks, `chunks of ${bucket}/${row.key}`);
    if (row.inline !== null) record.inline = row.inline;
    return record;
  }

  private toGarbage(row: GarbageRow): GarbageEntry {
    return { chunk: this.parse<ChunkRef>(row.chunk, 'a garbage entry'), queuedAt: row.queued_at };
  }

  private parse<T>(text: string, what: string): T {
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw sqliteFailure(this.file, new SyntaxError(`${what}: ${(err as Error).message}`));
    }
  }
}

/** SQLite could not take (or keep waiting for) a lock: nothing was written. */
function lockFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
