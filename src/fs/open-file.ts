import { DEFAULT_MAX_FILE_SIZE } from '../config/schema.js';
import { newVersionId } from '../core/chunk-id.js';
import { decryptChunk, encryptChunk } from '../core/crypto.js';
import { ConflictError, FileTooBigError, hasCode } from '../core/errors.js';
import { allocatedBytes, cover, covers, type Layer, seekContent, visibleSegments } from '../core/extents.js';
import { Semaphore } from '../core/semaphore.js';
import type { ChunkRef, Extent, ObjectAttrs, ObjectDraft, ObjectRecord } from '../core/types.js';
import type { BucketContext } from '../engine/chunk-store.js';
import { chunksNotIn } from '../engine/commit-outcome.js';
import type { Lilio } from '../engine/lilio.js';
import { inlineAad } from '../engine/object-writer.js';
import type { DirtyBudget, DirtyHolder } from './dirty-budget.js';
import { Errno, ErrnoError } from './errno.js';
import { FileLayers, type Piece } from './file-layers.js';

/** Bytes written into one window since its buffer was taken. */
interface DirtyBuffer {
  buf: Buffer;
  /** Window-relative [start, end) runs holding written bytes: sorted, disjoint. */
  runs: Array<[number, number]>;
  /**
   * Runs committed already (stored as slices) whose bytes the buffer still
   * holds: a window filled a little per commit (a log file fsynced as it
   * grows) is sealed as one whole chunk once these and `runs` cover it,
   * instead of piling up one slice per commit.
   */
  clean: Array<[number, number]>;
  /** Budget clock of the last write. */
  touched: number;
}

export interface OpenFileLimits {
  /** Window buffers one file may hold unsealed; beyond it the least recently written is sealed. */
  maxDirtyBuffers: number;
  /** Chunks of one file being replicated at once (backpressure on write). */
  sealsInFlight: number;
  /** The largest size a file may reach: writes and truncates past it fail with EFBIG (default 1 PiB). */
  maxFileSize?: number;
  /** Unsealed buffers of every open file together; shared by the mount's files. */
  budget?: DirtyBudget;
}

/**
 * Chunks a window may pile up before a commit merges them into one. A random
 * writer adds one (a slice of the commit's pack) per commit to each window it
 * touched; a read of a window fetches only the chunks its range shows, so
 * reads stay cheap long before this bound, and merging less often keeps the
 * bytes rewritten per byte written low.
 */
const MAX_PIECES_PER_WINDOW = 128;
/** Close compacts a file whose chunks store more than this times the bytes it shows. */
const COMPACT_AT_CLOSE_RATIO = 1.1;
/** Windows being filled from their start whose committed bytes a file keeps in memory after a commit. */
const MAX_RETAINED_WINDOWS = 4;

/**
 * One file as this mount sees it while any handle has it open: the committed
 * version it builds on (`base`) plus what this mount changed since, as
 * layers. A write lands in a buffer of its window and stores only the bytes
 * written: a full window becomes a chunk at once (sequential writers), a
 * partial one becomes a slice at commit (packed with the other windows'
 * slices into one chunk), laid over the older content. Growing a file stores
 * nothing: bytes no layer covers are a hole and read as zeros.
 *
 * Every handle of the path shares it, so a reader sees what a writer of the
 * same mount wrote before it is committed, as on a local filesystem. A
 * commit seals what is left and makes the version visible with one
 * compare-and-set; if anything fails, the session's chunks are deleted, the
 * state falls back to the committed version, and the caller gets the error
 * (EIO on close/fsync).
 */
export class OpenFile implements DirtyHolder {
  /** The committed version (undefined: a new file not committed yet). */
  base: ObjectRecord | undefined;
  size: number;
  attrs: ObjectAttrs;
  xattrs: Record<string, string> | undefined;
  /** Something changed since the last commit. */
  dirty = false;
  /** Unlinked while open: readable through its handles, never committed again. */
  unlinked = false;
  handles = 0;
  /**
   * Counts every change (data, size, attributes, xattrs). A handle remembers the count after its
   * own changes, so that its flush can tell whether they were committed, or lost with a commit
   * that failed (a flush must never report success for data that is gone).
   */
  changes = 0;
  /** The change count the last successful commit covered. */
  committedChanges = 0;
  /** The last failed commit: the changes it lost (up to `upTo`) and why. */
  private lost: { upTo: number; error: unknown } | undefined;
  /** The mount gave up on this file (shutdown while it was being written): every change or commit fails. */
  private abandoned: Error | undefined;

  private readonly chunkSize: number;
  /** Sealed content (base included); undefined while it is exactly the base version. */
  private layers: FileLayers | undefined;
  /**
   * The layers are exactly the base version (a layered file just committed, kept to spare a
   * rebuild): reads may take the engine's reader, with its read-ahead, as for an unchanged file.
   * Every change clears it before its first await.
   */
  private layersAreBase = false;
  private readonly buffers = new Map<number, DirtyBuffer>();
  /** How much of an inline base still shows (cut by truncation). */
  private inlineLimit: number;
  private inlineBytes: Buffer | undefined;
  /** Chunks sealed in this session that no version will reference (deleted after the commit). */
  private orphans: ChunkRef[] = [];
  /** Own pieces dropped while still being stored: they become orphans when they land. */
  private landing: Array<Promise<unknown>> = [];
  private failure: unknown;
  private readonly seals: Semaphore;
  private clock = 0;

  constructor(
    private readonly lilio: Lilio,
    readonly ctx: BucketContext,
    public bucket: string,
    public key: string,
    base: ObjectRecord | undefined,
    attrs: ObjectAttrs,
    private readonly limits: OpenFileLimits,
  ) {
    this.base = base;
    this.size = base?.size ?? 0;
    this.inlineLimit = base?.inline !== undefined ? base.size : 0;
    this.attrs = { ...attrs };
    this.xattrs = base?.xattrs ? { ...base.xattrs } : undefined;
    this.chunkSize = base && base.chunks.length > 0 ? base.chunkSize : ctx.record.chunkSize;
    this.seals = new Semaphore(limits.sealsInFlight);
    this.holdBase(base);
  }

  // ---- the read hold on the base version (sessions) ----

  private baseHold: ReturnType<Lilio['holdVersion']> | undefined;

  /**
   * Holds the version this file reads against gc in every process, until the
   * base changes or the last handle goes (unlinked files included): another
   * process may replace or delete it while it is open here.
   */
  private holdBase(record: ObjectRecord | undefined): void {
    const previous = this.baseHold;
    this.baseHold = record && record.chunks.length > 0 ? this.lilio.holdVersion(record) : undefined;
    void previous?.then((hold) => hold.release());
  }

  /** The file is no longer open: the version it read may be collected. */
  closed(): void {
    this.holdBase(undefined);
    // What the last commit left in memory to extend (clean runs only) goes with the last handle.
    for (const [window, buffer] of [...this.buffers]) if (buffer.runs.length === 0) this.dropBuffer(window);
    if (this.buffers.size === 0) this.limits.budget?.forget(this);
  }

  // ---- reads ----

  /** Copies up to `length` bytes at `position` into target; returns how many. */
  async read(target: Buffer, position: number, length: number): Promise<number> {
    // Nothing changed here: the engine's reader has read-ahead and the chunk cache.
    if (this.untouched()) return this.readAt(target, position, length);
    return this.exclusive(() => this.readAt(target, position, length));
  }

  /** Bytes the file stores (what `du` counts): holes and overwritten bytes excluded. */
  allocated(): number {
    const base = this.base;
    let bytes = 0;
    if (this.layers) bytes = this.layers.allocated();
    else if (base && base.inline === undefined) bytes = base.allocated ?? allocatedBytes(base);
    for (const buffer of this.buffers.values()) for (const [s, e] of buffer.runs) bytes += e - s;
    return Math.min(this.size, bytes + this.inlineLimit);
  }

  /** lseek(SEEK_DATA / SEEK_HOLE): undefined when no data follows `offset` (ENXIO). */
  seek(offset: number, want: 'data' | 'hole'): Promise<number | undefined> {
    return this.exclusive(async () => {
      // A dense version unchanged is data from 0 to its size: no pass over its chunk list per call
      // (cp --sparse=auto and friends seek once per extent).
      if (this.untouched() && this.base!.layout !== 'extents') {
        if (offset >= this.size) return undefined;
        return want === 'data' ? offset : this.size;
      }
      const windows = new Map<number, Layer<unknown>[]>();
      // An untouched file keeps its fast read path: its layers are built aside, not kept.
      const sealed = this.layers ?? (this.base ? FileLayers.of(this.base, this.chunkSize, () => undefined) : undefined);
      for (const [window, layers] of sealed?.windows ?? []) windows.set(window, [...layers]);
      const extra = (window: number, extent: Extent) => {
        const list = windows.get(window) ?? [];
        list.push({ chunk: undefined, extent });
        windows.set(window, list);
      };
      if (this.inlineLimit > 0) extra(0, [0, 0, this.inlineLimit]);
      for (const [window, buffer] of this.buffers) {
        for (const [s, e] of buffer.runs) extra(window, [window * this.chunkSize + s, s, e - s]);
      }
      return seekContent(windows, this.chunkSize, this.size, offset, want);
    });
  }

  /** Whether any buffer holds bytes not committed yet (not only bytes kept after a commit). */
  private hasDirtyBuffers(): boolean {
    for (const buffer of this.buffers.values()) if (buffer.runs.length > 0) return true;
    return false;
  }

  private untouched(): boolean {
    const base = this.base;
    return (
      base !== undefined &&
      (this.layers === undefined || this.layersAreBase) &&
      !this.hasDirtyBuffers() &&
      base.size === this.size &&
      base.inline === undefined
    );
  }

  private async readAt(target: Buffer, position: number, length: number): Promise<number> {
    const end = Math.min(this.size, position + length);
    if (position >= end) return 0;
    if (this.untouched()) return this.reader().readInto(target, position, end - position);
    const first = Math.floor(position / this.chunkSize);
    const last = Math.floor((end - 1) / this.chunkSize);
    const fills: Array<Promise<void>> = [];
    for (let window = first; window <= last; window++) {
      const from = Math.max(position, window * this.chunkSize);
      const to = Math.min(end, (window + 1) * this.chunkSize);
      fills.push(this.fillWindow(target, from - position, window, from, to));
    }
    await Promise.all(fills);
    return end - position;
  }

  /** File bytes [from, to) of one window into target at `at`: inline base, then layers, then buffers. */
  private async fillWindow(target: Buffer, at: number, window: number, from: number, to: number): Promise<void> {
    target.fill(0, at, at + to - from);
    if (window === 0 && this.inlineLimit > from) {
      this.inline().copy(target, at, from, Math.min(to, this.inlineLimit));
    }
    const layers = this.content().windows.get(window);
    if (layers) {
      const segments = visibleSegments(layers, from, to);
      const parts = await Promise.all(segments.map((s) => this.chunkBytes(s.chunk)));
      segments.forEach((s, i) => {
        parts[i]!.copy(target, at + s.fileOffset - from, s.chunkOffset, s.chunkOffset + s.length);
      });
    }
    const buffer = this.buffers.get(window);
    if (buffer) {
      const start = window * this.chunkSize;
      for (const [s, e] of [...buffer.clean, ...buffer.runs]) {
        const a = Math.max(from, start + s);
        const b = Math.min(to, start + e);
        if (a < b) buffer.buf.copy(target, at + a - from, a - start, b - start);
      }
    }
  }

  private async chunkBytes(piece: Piece): Promise<Buffer> {
    const ref = piece.ref ?? (await piece.pending!);
    return this.lilio.chunks.read(this.ctx, ref);
  }

  // ---- writes ----

  /** Writes `data` at `position`, or at the end of the file at the time the write runs. */
  write(data: Buffer, position: number | 'end'): Promise<void> {
    return this.exclusive(() => this.writeAt(data, position === 'end' ? this.size : position));
  }

  private async writeAt(data: Buffer, position: number): Promise<void> {
    if (this.abandoned) throw this.abandoned;
    if (this.failure) throw this.failure;
    this.checkSize(position + data.byteLength);
    this.layersAreBase = false;
    let offset = 0;
    while (offset < data.byteLength) {
      const pos = position + offset;
      const window = Math.floor(pos / this.chunkSize);
      const within = pos - window * this.chunkSize;
      const n = Math.min(data.byteLength - offset, this.chunkSize - within);
      const budget = this.limits.budget;
      if (budget && !this.buffers.has(window) && !budget.tryReserve(this, this.chunkSize)) {
        await budget.reserve(this, this.chunkSize, () => this.sealOldest());
      }
      const buffer = this.bufferFor(window);
      data.copy(buffer.buf, within, offset, offset + n);
      cover(buffer.runs, within, within + n);
      buffer.touched = this.tick();
      offset += n;
      if (pos + n > this.size) this.size = pos + n;
      // A window written whole is done for a sequential writer: seal it now, in the background.
      if (coversWith(buffer, 0, this.chunkSize)) await this.sealWindow(window);
    }
    this.changed();
    this.attrs.mtimeMs = this.attrs.ctimeMs = Date.now();
    if (this.buffers.size > this.limits.maxDirtyBuffers) await this.sealOldest();
  }

  /** Cuts or extends the file. Extending stores nothing: the new bytes are a hole. */
  truncate(size: number): Promise<void> {
    return this.exclusive(() => this.truncateTo(size));
  }

  private async truncateTo(size: number): Promise<void> {
    if (this.abandoned) throw this.abandoned;
    if (this.failure) throw this.failure;
    this.checkSize(size);
    this.layersAreBase = false;
    if (size < this.size) {
      this.content().cutAt(size);
      this.inlineLimit = Math.min(this.inlineLimit, size);
      for (const [window, buffer] of this.buffers) {
        const start = window * this.chunkSize;
        if (start >= size) this.dropBuffer(window);
        else {
          buffer.runs = clipRuns(buffer.runs, 0, size - start);
          buffer.clean = clipRuns(buffer.clean, 0, size - start);
        }
      }
    }
    this.size = size;
    this.changed();
    this.attrs.mtimeMs = this.attrs.ctimeMs = Date.now();
  }

  /**
   * fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads as zeros afterwards.
   * Windows inside it drop their layers (nothing stored); the partial
   * windows at its edges get zeros written over the range.
   */
  punchHole(offset: number, length: number): Promise<void> {
    return this.exclusive(async () => {
      if (this.abandoned) throw this.abandoned;
      if (this.failure) throw this.failure;
      const end = Math.min(this.size, offset + length);
      if (offset >= end) return;
      this.layersAreBase = false;
      const firstWhole = Math.ceil(offset / this.chunkSize);
      const afterWhole = Math.floor(end / this.chunkSize);
      const inside = (window: number) => window >= firstWhole && window < afterWhole;
      const layers = this.content();
      for (const window of [...layers.windows.keys()]) if (inside(window)) layers.clearWindow(window);
      for (const window of [...this.buffers.keys()]) if (inside(window)) this.dropBuffer(window);
      if (inside(0)) this.inlineLimit = 0;
      const edges: Array<[number, number]> =
        firstWhole > afterWhole
          ? [[offset, end]]
          : [
              [offset, Math.min(end, firstWhole * this.chunkSize)],
              [Math.max(offset, afterWhole * this.chunkSize), end],
            ];
      for (const [a, b] of edges) if (a < b) await this.writeAt(Buffer.alloc(b - a), a);
      this.changed();
    });
  }

  /** Changes attributes only; committed with the next commit (now, if nothing else is pending). */
  setAttrs(attrs: Partial<ObjectAttrs>): void {
    if (this.abandoned) throw this.abandoned;
    Object.assign(this.attrs, attrs, { ctimeMs: Date.now() });
    this.changed();
  }

  setXattrs(xattrs: Record<string, string> | undefined): void {
    if (this.abandoned) throw this.abandoned;
    this.xattrs = xattrs;
    this.attrs.ctimeMs = Date.now();
    this.changed();
  }

  /** Something changed since the last commit (a new file is a change before its first write). */
  changed(): void {
    this.dirty = true;
    this.changes++;
  }

  /**
   * Makes the current state the object's committed version. On any failure
   * the session's changes are dropped (the committed version stays as it was)
   * and the error is thrown.
   */
  commit(): Promise<ObjectRecord | undefined> {
    return this.exclusive(() => this.commitNow());
  }

  /**
   * Rewrites the windows of a committed file whose chunks store noticeably
   * more than the file shows (slices over older chunks), one chunk per
   * window, and commits. Run when the last handle closes; nothing to do for
   * files written sequentially.
   */
  compact(): Promise<void> {
    return this.exclusive(async () => {
      const base = this.base;
      if (this.dirty || this.unlinked || !base || base.layout !== 'extents') return;
      const stored = base.chunks.reduce((sum, c) => sum + c.size, 0);
      if (stored <= COMPACT_AT_CLOSE_RATIO * (base.allocated ?? allocatedBytes(base))) return;
      this.layersAreBase = false;
      const layers = this.content();
      for (const [window, list] of [...layers.windows]) {
        if (list.length > 1 || list.some((l) => l.chunk.ref && l.chunk.ref.size !== l.extent[2])) {
          await this.compactWindow(window);
        }
      }
      this.dirty = true;
      await this.commitNow();
    });
  }

  private async commitNow(): Promise<ObjectRecord | undefined> {
    if (this.abandoned) throw this.abandoned;
    if (!this.dirty || this.unlinked) return this.base;
    let draft: ObjectDraft | undefined;
    // Attribute changes may land while this commit awaits (they do not queue): whatever arrives
    // after the draft took its snapshot stays dirty for the next commit.
    const covered = this.changes;
    try {
      if (this.failure) throw this.failure;
      const onBase = this.buildsOnBase();
      draft = await this.buildDraft();
      const fresh = chunksNotIn(draft, this.base);
      let record: ObjectRecord;
      try {
        record = await this.lilio.commitRecord(draft, this.base ? { version: this.base.version } : 'absent', fresh);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        // Another process committed meanwhile. A version written from scratch (cp over the file)
        // replaces it: the last close wins, as on NFS, and neither is torn. An edit of the version
        // this file was opened at would silently drop the other process's changes under ours,
        // a mix nobody wrote: it fails (EIO) and the other version stays.
        if (onBase) {
          throw new ErrnoError(
            Errno.EIO,
            `${this.bucket}/${this.key}: another process committed a new version while this one edited the old; ` +
              'these changes were not committed',
          );
        }
        // Our reused chunks (none here but an inline base's copy) are rescued from the garbage queue by the commit.
        record = await this.lilio.commitRecord(draft, 'any', fresh);
      }
      await this.settleLanding();
      const orphans = this.orphans;
      this.orphans = [];
      const referenced = new Set(record.chunks.map((c) => c.id));
      const unreferenced = orphans.filter((c) => !referenced.has(c.id));
      if (unreferenced.length > 0) await this.lilio.writerDeps.discard(unreferenced);
      this.base = record;
      // The layers stay (rebuilding them from the record on the next write would cost a pass over
      // every chunk per commit); reads take the engine's path until something changes again.
      if (record.inline === undefined && this.layers) this.layers.committed();
      else this.layers = undefined;
      this.layersAreBase = this.layers !== undefined;
      this.inlineLimit = record.inline !== undefined ? record.size : 0;
      this.holdBase(record);
      this.inlineBytes = undefined;
      this.cachedReader = undefined;
      this.committedChanges = covered;
      this.lost = undefined;
      this.dirty = this.changes !== covered;
      if (!this.dirty && this.buffers.size === 0) this.limits.budget?.forget(this);
      return record;
    } catch (err) {
      // Every change so far is gone, whichever handle made it: their flushes report this error.
      this.lost = { upTo: this.changes, error: err };
      // A commit that may have landed: the engine queued (or left) its chunks, which must not be deleted here.
      await this.reset(hasCode(err, 'COMMIT_UNKNOWN') ? draft?.chunks : undefined);
      throw err;
    }
  }

  /**
   * After a flush: throws if the changes a handle made (up to change `mine`) were dropped by a
   * failed commit instead of committed. Reported once per handle, as Linux reports a writeback
   * error once per descriptor.
   */
  checkCommitted(mine: number): void {
    if (mine <= this.committedChanges) return;
    if (this.lost && mine <= this.lost.upTo) throw this.lost.error;
    if (this.abandoned) throw this.abandoned;
  }

  /**
   * Shutdown while this file is still being written: its uncommitted changes are dropped, as a
   * crash would drop them (the committed version stays), and every later write, flush or commit
   * fails with `reason`. Resolves with whether anything was dropped.
   */
  abandon(reason: Error): Promise<boolean> {
    this.abandoned ??= reason;
    return this.exclusive(async () => {
      if (!this.dirty) return false;
      this.lost = { upTo: this.changes, error: reason };
      await this.reset();
      return true;
    });
  }

  /**
   * Unlink while open: nothing of this file is committed any more, and `remove` (deleting the
   * path) runs only after a commit already in flight has landed, or that commit would bring the
   * file back. `remove` gets whether a version was ever committed.
   */
  unlink<T>(remove: (committed: boolean) => Promise<T>): Promise<T> {
    this.unlinked = true;
    return this.exclusive(() => remove(this.base !== undefined));
  }

  /** The content about to be committed still shows part of the base version (an edit, not a rewrite). */
  private buildsOnBase(): boolean {
    const base = this.base;
    if (!base) return false;
    if (this.inlineLimit > 0) return true;
    if (!this.layers) return base.chunks.length > 0 && this.size > 0;
    return this.layers.pieces().some((p) => !p.own);
  }

  /** Drops every uncommitted change (the handle was unlinked, or the mount is giving up). */
  discard(): Promise<void> {
    return this.exclusive(() => this.reset());
  }

  // ---- the budget's view ----

  oldestTouch(): number | undefined {
    let oldest: number | undefined;
    for (const buffer of this.buffers.values())
      if (oldest === undefined || buffer.touched < oldest) oldest = buffer.touched;
    return oldest;
  }

  evictOldest(): Promise<void> {
    return this.exclusive(() => this.sealOldest());
  }

  // ---- internals ----

  /**
   * Writes, truncations, commits and reads of changed content run one at a
   * time. Handles of other processes share this file, so a write may arrive
   * while a flush commits: run concurrently, the commit would seal a buffer
   * the write is filling.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private cachedReader: ReturnType<Lilio['reader']> | undefined;

  private reader(): ReturnType<Lilio['reader']> {
    this.cachedReader ??= this.lilio.reader(this.ctx, this.base!);
    return this.cachedReader;
  }

  private tick(): number {
    return this.limits.budget ? this.limits.budget.tick() : ++this.clock;
  }

  private checkSize(size: number): void {
    const max = this.limits.maxFileSize ?? DEFAULT_MAX_FILE_SIZE;
    if (size > max) throw new FileTooBigError(`${this.key}: ${size} bytes is past the largest file size, ${max}`);
  }

  /** The sealed layers, built from the base version the first time anything changes. */
  private content(): FileLayers {
    if (!this.layers) {
      const dropped = (piece: Piece) => this.dropped(piece);
      this.layers = this.base
        ? FileLayers.of(this.base, this.chunkSize, dropped)
        : new FileLayers(this.chunkSize, dropped);
    }
    return this.layers;
  }

  /** A piece no layer shows any more: if this session stored it, it is deleted after the commit. */
  private dropped(piece: Piece): void {
    if (!piece.own) return;
    if (piece.ref) this.orphans.push(piece.ref);
    else if (piece.pending) {
      this.landing.push(piece.pending.then((ref) => void this.orphans.push(ref)).catch(() => undefined));
    }
  }

  private async settleLanding(): Promise<void> {
    while (this.landing.length > 0) {
      const landing = this.landing;
      this.landing = [];
      await Promise.all(landing);
    }
  }

  private inline(): Buffer {
    if (!this.inlineBytes) {
      const stored = Buffer.from(this.base?.inline ?? '', 'base64');
      this.inlineBytes = this.ctx.dataKey
        ? decryptChunk(this.ctx.dataKey, inlineAad(this.base!.versionId), stored)
        : stored;
    }
    return this.inlineBytes;
  }

  private bufferFor(window: number): DirtyBuffer {
    let buffer = this.buffers.get(window);
    if (!buffer) {
      buffer = { buf: this.pool().take(), runs: [], clean: [], touched: 0 };
      // Counted against the budget by the caller (reserve), before the buffer was taken.
      this.buffers.set(window, buffer);
    }
    return buffer;
  }

  /** Takes a buffer out of the file; its bytes are the caller's to seal or forget. */
  private takeBuffer(window: number): DirtyBuffer | undefined {
    const buffer = this.buffers.get(window);
    if (!buffer) return undefined;
    this.buffers.delete(window);
    this.limits.budget?.give(this.chunkSize);
    return buffer;
  }

  private dropBuffer(window: number): void {
    const buffer = this.takeBuffer(window);
    if (buffer) this.pool().give(buffer.buf);
  }

  private pool() {
    return this.lilio.writerDeps.pool(this.chunkSize);
  }

  private async sealOldest(): Promise<void> {
    let oldest: number | undefined;
    let oldestTouch = Number.POSITIVE_INFINITY;
    for (const [window, buffer] of this.buffers) {
      if (buffer.touched < oldestTouch) {
        oldest = window;
        oldestTouch = buffer.touched;
      }
    }
    if (oldest !== undefined) await this.sealWindow(oldest);
  }

  /**
   * Seals a window's buffer: as a whole chunk when it covers the window up to
   * the file's end (older layers there go), else as a slice holding only the
   * runs written, laid over what is below.
   */
  private async sealWindow(window: number, retain = false): Promise<void> {
    const buffer = this.takeBuffer(window);
    if (!buffer) return;
    if (buffer.runs.length === 0) {
      // Only bytes committed already (kept to extend the window): nothing to store.
      this.pool().give(buffer.buf);
      return;
    }
    const start = window * this.chunkSize;
    const length = Math.min(this.chunkSize, this.size - start);
    if (coversWith(buffer, 0, length)) {
      this.content().clearWindow(window);
      if (window === 0) this.inlineLimit = 0;
      // The end of a file being appended to: what follows is stored as slices over this chunk until
      // the window is full, then as one chunk again; its bytes stay here for that (a copy, as the
      // buffer itself is being stored).
      if (retain && length < this.chunkSize) this.retain(window, buffer.buf, length);
      await this.sealPiece(buffer.buf, length, [[start, 0, length]]);
      return;
    }
    // The runs move to the front of the buffer (copy is a memmove): one slice, an extent per run.
    let packed = 0;
    const extents: Extent[] = [];
    for (const [s, e] of buffer.runs) {
      buffer.buf.copy(buffer.buf, packed, s, e);
      extents.push([start + s, packed, e - s]);
      packed += e - s;
    }
    await this.sealPiece(buffer.buf, packed, extents);
  }

  private retainedCount(): number {
    let retained = 0;
    for (const buffer of this.buffers.values()) if (buffer.runs.length === 0) retained++;
    return retained;
  }

  /** Keeps a copy of a window's committed first `length` bytes, if the budget has room and few are kept. */
  private retain(window: number, bytes: Buffer, length: number): void {
    if (this.retainedCount() >= MAX_RETAINED_WINDOWS) return;
    if (this.limits.budget && !this.limits.budget.tryReserve(this, this.chunkSize)) return;
    const buf = this.pool().take();
    bytes.copy(buf, 0, 0, length);
    this.buffers.set(window, { buf, runs: [], clean: [[0, length]], touched: this.tick() });
  }

  /** Seals the runs of several windows' buffers into as few chunks as fit (a commit's slices). */
  private async packRuns(windows: number[]): Promise<void> {
    let buf: Buffer | undefined;
    let packed = 0;
    let extents: Extent[] = [];
    const flush = async () => {
      if (buf && packed > 0) await this.sealPiece(buf, packed, extents);
      else if (buf) this.pool().give(buf);
      buf = undefined;
      packed = 0;
      extents = [];
    };
    let retained = this.retainedCount();
    for (const window of windows) {
      const buffer = this.buffers.get(window)!;
      const bytes = buffer.runs.reduce((sum, [s, e]) => sum + e - s, 0);
      if (packed + bytes > this.chunkSize) await flush();
      buf ??= this.pool().take();
      const start = window * this.chunkSize;
      for (const [s, e] of buffer.runs) {
        buffer.buf.copy(buf, packed, s, e);
        extents.push([start + s, packed, e - s]);
        packed += e - s;
      }
      // A window being filled from its start (an appending writer that fsyncs) keeps its bytes, so
      // that once full it is stored as one chunk and its slices go; any other buffer is done.
      const clean = [...buffer.clean];
      for (const [s, e] of buffer.runs) cover(clean, s, e);
      if (retained < MAX_RETAINED_WINDOWS && clean.length === 1 && clean[0]![0] === 0) {
        buffer.clean = clean;
        buffer.runs = [];
        retained++;
      } else {
        this.takeBuffer(window);
        this.pool().give(buffer.buf);
      }
    }
    await flush();
  }

  /**
   * Merges a window's layers into one chunk that holds what they show: a
   * whole chunk when they cover the window, else only the runs they cover
   * (a hole inside the window stays a hole).
   */
  private async compactWindow(window: number): Promise<void> {
    const start = window * this.chunkSize;
    const end = Math.min(start + this.chunkSize, this.size);
    const layers = this.content().windows.get(window);
    if (!layers || end <= start) return;
    const segments = visibleSegments(layers, start, end);
    const buf = this.pool().take();
    const extents: Extent[] = [];
    let packed = 0;
    try {
      const parts = await Promise.all(segments.map((s) => this.chunkBytes(s.chunk)));
      segments.forEach((s, i) => {
        parts[i]!.copy(buf, packed, s.chunkOffset, s.chunkOffset + s.length);
        const last = extents[extents.length - 1];
        if (last && last[0] + last[2] === s.fileOffset) last[2] += s.length;
        else extents.push([s.fileOffset, packed, s.length]);
        packed += s.length;
      });
    } catch (err) {
      this.pool().give(buf);
      throw err;
    }
    this.content().clearWindow(window);
    await this.sealPiece(buf, packed, extents);
  }

  /**
   * Starts replicating buf[0, length) as a new top layer with these extents;
   * waits only for an in-flight slot (backpressure). The buffer goes back to
   * the pool once every replica call is over.
   */
  private async sealPiece(buf: Buffer, length: number, extents: Extent[], under = false): Promise<void> {
    await this.seals.acquire();
    let sealed: Awaited<ReturnType<Lilio['chunks']['seal']>>;
    try {
      sealed = await this.lilio.chunks.seal(this.ctx, buf.subarray(0, length));
    } catch (err) {
      this.seals.release();
      this.pool().give(buf);
      this.failure ??= err;
      throw err;
    }
    const layers = this.content();
    const piece = under
      ? layers.addUnder({ pending: sealed.ref, own: true }, extents)
      : layers.add({ pending: sealed.ref, own: true }, extents);
    sealed.ref.then(
      (ref) => {
        piece.ref = ref;
        piece.pending = undefined;
      },
      (err) => {
        this.failure ??= err;
      },
    );
    void sealed.settled.finally(() => {
      this.seals.release();
      this.pool().give(buf);
    });
  }

  private async buildDraft(): Promise<ObjectDraft> {
    const versionId = newVersionId();
    const threshold = this.lilio.writerDeps.inlineThreshold;
    const base = this.base;
    const common = {
      bucket: this.bucket,
      key: this.key,
      kind: 'file' as const,
      versionId,
      size: this.size,
      chunkSize: this.chunkSize,
      attrs: { ...this.attrs },
      committedAt: Date.now(),
      ...(this.xattrs ? { xattrs: this.xattrs } : {}),
      ...(base?.contentType ? { contentType: base.contentType } : {}),
    };
    if (this.size <= threshold) {
      if (this.size === 0) {
        await this.dropAll();
        return { ...common, chunks: [] };
      }
      const bytes = Buffer.alloc(this.size);
      await this.readAt(bytes, 0, this.size);
      const stored = this.ctx.dataKey ? encryptChunk(this.ctx.dataKey, inlineAad(versionId), bytes) : bytes;
      await this.dropAll();
      return { ...common, chunks: [], inline: stored.toString('base64') };
    }
    const layers = this.content();
    if (this.inlineLimit > 0) {
      // The inline base becomes the oldest chunk: whatever was written over it stays on top.
      const buf = this.pool().take();
      this.inline().copy(buf, 0, 0, this.inlineLimit);
      const length = this.inlineLimit;
      this.inlineLimit = 0;
      await this.sealPiece(buf, length, [[0, 0, length]], true);
    }
    const partial: number[] = [];
    for (const window of [...this.buffers.keys()].sort((a, b) => a - b)) {
      const buffer = this.buffers.get(window)!;
      if (buffer.runs.length === 0) continue; // committed bytes kept in memory: nothing new
      const length = Math.min(this.chunkSize, this.size - window * this.chunkSize);
      // Written whole now, or filled up with what earlier commits stored as slices: one chunk.
      if (covers(buffer.runs, 0, length) || coversWith(buffer, 0, this.chunkSize)) await this.sealWindow(window, true);
      else partial.push(window);
    }
    await this.packRuns(partial);
    await this.landAll();
    for (const window of layers.tidy(this.size)) {
      if (layers.piecesIn(window) > MAX_PIECES_PER_WINDOW) await this.compactWindow(window);
    }
    await this.landAll();
    const { chunks, layout } = layers.toChunks(this.size);
    if (!layout) return { ...common, chunks };
    return { ...common, chunks, layout, allocated: layers.allocated() };
  }

  /** Waits until every piece shown has landed on W replicas; throws the first failure. */
  private async landAll(): Promise<void> {
    await Promise.all(this.content().pending());
    if (this.failure) throw this.failure;
  }

  /** Lets go of every buffer and piece (a commit that stores nothing in chunks, or a reset). */
  private async dropAll(): Promise<void> {
    for (const window of [...this.buffers.keys()]) this.dropBuffer(window);
    const layers = this.layers;
    this.layers = undefined;
    this.layersAreBase = false;
    if (layers) for (const piece of layers.pieces()) if (piece.own) this.dropped(piece);
    this.inlineLimit = 0;
    await this.settleLanding();
  }

  private async reset(kept: ChunkRef[] = []): Promise<void> {
    await this.dropAll();
    const keep = new Set(kept.map((c) => c.id));
    const orphans = this.orphans.filter((c) => !keep.has(c.id));
    this.orphans = [];
    if (orphans.length > 0) await this.lilio.writerDeps.discard(orphans).catch(() => undefined);
    this.failure = undefined;
    this.dirty = false;
    this.limits.budget?.forget(this);
    const base = this.base;
    this.size = base?.size ?? 0;
    this.inlineLimit = base?.inline !== undefined ? base.size : 0;
    if (base) {
      this.attrs = { ...base.attrs };
      this.xattrs = base.xattrs ? { ...base.xattrs } : undefined;
    }
  }
}

/** Whether a buffer's new and committed runs together cover [from, to). */
function coversWith(buffer: DirtyBuffer, from: number, to: number): boolean {
  if (buffer.clean.length === 0) return covers(buffer.runs, from, to);
  const all = [...buffer.clean];
  for (const [s, e] of buffer.runs) cover(all, s, e);
  return covers(all, from, to);
}

/** Runs clipped to [from, to). */
function clipRuns(runs: Array<[number, number]>, from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [s, e] of runs) {
    const a = Math.max(s, from);
    const b = Math.min(e, to);
    if (a < b) out.push([a, b]);
  }
  return out;
}
