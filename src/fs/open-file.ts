import { newVersionId } from '../core/chunk-id.js';
import { decryptChunk, encryptChunk } from '../core/crypto.js';
import { ConflictError } from '../core/errors.js';
import { Semaphore } from '../core/semaphore.js';
import type { ChunkRef, ObjectAttrs, ObjectDraft, ObjectRecord } from '../core/types.js';
import type { BucketContext } from '../engine/chunk-store.js';
import type { Lilio } from '../engine/lilio.js';
import { inlineAad } from '../engine/object-writer.js';

/** A chunk this session changed: bytes in a buffer, being sealed, or sealed. */
type Slot =
  /** buf[0, len) is the content; the chunk is zero from len to its logical length. */
  | { state: 'buffer'; buf: Buffer; len: number; touched: number }
  | { state: 'sealing'; buf: Buffer; len: number; ref: Promise<ChunkRef> }
  | { state: 'sealed'; ref: ChunkRef };

type BufferSlot = Extract<Slot, { state: 'buffer' }>;

/**
 * A file's chunk slots by index, which also knows which of them are unsealed
 * buffers: every write asks, and a file streamed sequentially holds one
 * sealed slot per chunk until its commit (100,000 for a 100 GiB file).
 * Slots are replaced, never changed in state, so set and delete see it all.
 */
class Slots extends Map<number, Slot> {
  /** The slots in 'buffer' state, by index. */
  readonly buffers = new Map<number, BufferSlot>();

  override set(index: number, slot: Slot): this {
    if (slot.state === 'buffer') this.buffers.set(index, slot);
    else this.buffers.delete(index);
    return super.set(index, slot);
  }

  override delete(index: number): boolean {
    this.buffers.delete(index);
    return super.delete(index);
  }

  override clear(): void {
    this.buffers.clear();
    super.clear();
  }
}

export interface OpenFileLimits {
  /** Chunk buffers one file may hold unsealed; beyond it the least recently written is sealed. */
  maxDirtyBuffers: number;
  /** Chunks of one file being replicated at once (backpressure on write). */
  sealsInFlight: number;
}

/**
 * One file as this mount sees it while any handle has it open: the committed
 * version it builds on (`base`) plus the chunks this session changed. Every
 * handle of the path shares it, so a reader sees what a writer of the same
 * mount wrote before it is committed, as on a local filesystem.
 *
 * Writes at any offset touch only the chunks they cover; unchanged chunks
 * are reused by id in the next version. A commit seals what is left, builds
 * the version and makes it visible with one compare-and-set; if anything
 * fails, the session's chunks are deleted, the state falls back to the
 * committed version, and the caller gets the error (EIO on close/fsync).
 */
export class OpenFile {
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

  private readonly chunkSize: number;
  private readonly slots = new Slots();
  /** Chunks sealed in this session that the next version may not reference (to delete after commit). */
  private orphans: ChunkRef[] = [];
  private failure: unknown;
  private readonly seals: Semaphore;
  private inlineBytes: Buffer | undefined;
  private clock = 0;
  /**
   * How much of the base version still shows through: the smallest size the
   * file was cut to in this session. Base bytes past it read as zeros, even
   * after the file grows again.
   */
  private baseLimit: number;

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
    this.baseLimit = this.size;
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
  }

  // ---- reads ----

  /** Copies up to `length` bytes at `position` into target; returns how many. */
  async read(target: Buffer, position: number, length: number): Promise<number> {
    // Nothing changed here: the engine's reader has read-ahead and the chunk cache.
    if (this.untouched()) return this.readAt(target, position, length);
    return this.exclusive(() => this.readAt(target, position, length));
  }

  private untouched(): boolean {
    const base = this.base;
    return (
      base !== undefined &&
      this.slots.size === 0 &&
      base.size === this.size &&
      this.baseLimit === this.size &&
      base.inline === undefined
    );
  }

  private async readAt(target: Buffer, position: number, length: number): Promise<number> {
    const end = Math.min(this.size, position + length);
    if (position >= end) return 0;
    if (this.untouched()) return this.reader().readInto(target, position, end - position);
    let copied = 0;
    for (let pos = position; pos < end; ) {
      const index = Math.floor(pos / this.chunkSize);
      const chunkStart = index * this.chunkSize;
      const upto = Math.min(end, chunkStart + this.chunkSize);
      const content = await this.content(index);
      const from = pos - chunkStart;
      const to = upto - chunkStart;
      const available = Math.min(to, content.byteLength);
      if (available > from) content.copy(target, copied, from, available);
      // Past the stored content the chunk is zero (a hole, or the tail of a grown chunk).
      const zeroFrom = Math.max(from, available);
      if (to > zeroFrom) target.fill(0, copied + zeroFrom - from, copied + to - from);
      copied += to - from;
      pos = upto;
    }
    return copied;
  }

  // ---- writes ----

  /** Writes `data` at `position`, or at the end of the file at the time the write runs. */
  write(data: Buffer, position: number | 'end'): Promise<void> {
    return this.exclusive(() => this.writeAt(data, position === 'end' ? this.size : position));
  }

  private async writeAt(data: Buffer, position: number): Promise<void> {
    if (this.failure) throw this.failure;
    let offset = 0;
    while (offset < data.byteLength) {
      const pos = position + offset;
      const index = Math.floor(pos / this.chunkSize);
      const within = pos - index * this.chunkSize;
      const n = Math.min(data.byteLength - offset, this.chunkSize - within);
      const slot = await this.editable(index);
      if (within > slot.len) slot.buf.fill(0, slot.len, within);
      data.copy(slot.buf, within, offset, offset + n);
      slot.len = Math.max(slot.len, within + n);
      slot.touched = ++this.clock;
      offset += n;
      // The size moves before a seal: the sealed chunk's length is taken from it.
      if (pos + n > this.size) this.size = pos + n;
      // A chunk written to its end is done for a sequential writer: seal it now, in the background.
      if (slot.len === this.chunkSize && within + n === this.chunkSize) await this.seal(index);
    }
    this.dirty = true;
    this.attrs.mtimeMs = this.attrs.ctimeMs = Date.now();
    if (this.dirtyBuffers() > this.limits.maxDirtyBuffers) await this.sealLeastRecent();
  }

  /** Cuts or extends (with zeros) the file. */
  truncate(size: number): Promise<void> {
    return this.exclusive(() => this.truncateTo(size));
  }

  private async truncateTo(size: number): Promise<void> {
    if (this.failure) throw this.failure;
    if (size < this.baseLimit) this.baseLimit = size;
    if (size < this.size) {
      const keep = Math.ceil(size / this.chunkSize);
      for (const [index, slot] of this.slots) {
        if (index >= keep) {
          this.slots.delete(index);
          await this.dropSlot(slot);
        }
      }
      const tail = size % this.chunkSize;
      if (tail !== 0) {
        const slot = await this.editable(keep - 1);
        if (slot.len > tail) slot.len = tail;
      }
    }
    this.size = size;
    this.dirty = true;
    this.attrs.mtimeMs = this.attrs.ctimeMs = Date.now();
  }

  /** Changes attributes only; committed with the next commit (now, if nothing else is pending). */
  setAttrs(attrs: Partial<ObjectAttrs>): void {
    Object.assign(this.attrs, attrs, { ctimeMs: Date.now() });
    this.dirty = true;
  }

  setXattrs(xattrs: Record<string, string> | undefined): void {
    this.xattrs = xattrs;
    this.attrs.ctimeMs = Date.now();
    this.dirty = true;
  }

  /**
   * Makes the current state the object's committed version. On any failure
   * the session's changes are dropped (the committed version stays as it was)
   * and the error is thrown.
   */
  commit(): Promise<ObjectRecord | undefined> {
    return this.exclusive(() => this.commitNow());
  }

  private async commitNow(): Promise<ObjectRecord | undefined> {
    if (!this.dirty || this.unlinked) return this.base;
    try {
      if (this.failure) throw this.failure;
      const draft = await this.buildDraft();
      let record: ObjectRecord;
      try {
        record = await this.lilio.commitRecord(draft, this.base ? { version: this.base.version } : 'absent');
      } catch (err) {
        // Another process committed meanwhile: the last close wins, as on NFS. Our reused chunks
        // are rescued from the garbage queue by the commit itself.
        if (!(err instanceof ConflictError)) throw err;
        record = await this.lilio.commitRecord(draft, 'any');
      }
      const orphans = this.orphans;
      this.orphans = [];
      const referenced = new Set(record.chunks.map((c) => c.id));
      const unreferenced = orphans.filter((c) => !referenced.has(c.id));
      if (unreferenced.length > 0) await this.lilio.writerDeps.discard(unreferenced);
      this.base = record;
      this.holdBase(record);
      this.baseLimit = record.size;
      this.inlineBytes = undefined;
      this.cachedReader = undefined;
      this.slots.clear();
      this.dirty = false;
      return record;
    } catch (err) {
      await this.reset();
      throw err;
    }
  }

  /** Drops every uncommitted change (the handle was unlinked, or the mount is giving up). */
  discard(): Promise<void> {
    return this.exclusive(() => this.reset());
  }

  // ---- internals ----

  /**
   * Writes, truncations, commits and reads of changed content run one at a
   * time. Handles of other processes share this file, so a write may arrive
   * while a flush commits: run concurrently, the commit would clear the slot
   * the write had just filled and the file would read zeros there.
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

  private dirtyBuffers(): number {
    return this.slots.buffers.size;
  }

  /** The logical length of chunk `index` at the current size. */
  private lengthOf(index: number): number {
    return Math.max(0, Math.min(this.chunkSize, this.size - index * this.chunkSize));
  }

  /** The stored content of a chunk as this session sees it (may be shorter than its logical length). */
  private async content(index: number): Promise<Buffer> {
    const slot = this.slots.get(index);
    if (slot) {
      if (slot.state === 'buffer' || slot.state === 'sealing') return slot.buf.subarray(0, slot.len);
      return this.lilio.chunks.read(this.ctx, slot.ref);
    }
    return this.baseContent(index);
  }

  private async baseContent(index: number): Promise<Buffer> {
    const base = this.base;
    // Only base bytes inside both the current size and the truncation watermark count.
    const visible = Math.min(this.lengthOf(index), this.baseLimit - index * this.chunkSize);
    if (!base || visible <= 0) return EMPTY;
    if (base.inline !== undefined) {
      if (index !== 0) return EMPTY;
      if (!this.inlineBytes) {
        const stored = Buffer.from(base.inline, 'base64');
        this.inlineBytes = this.ctx.dataKey
          ? decryptChunk(this.ctx.dataKey, inlineAad(base.versionId), stored)
          : stored;
      }
      return this.inlineBytes.subarray(0, visible);
    }
    const ref = base.chunks[index];
    if (!ref) return EMPTY;
    const data = await this.lilio.chunks.read(this.ctx, ref);
    return data.subarray(0, Math.min(data.byteLength, visible));
  }

  /** Chunk `index` as a buffer this session may change, loading its current content first. */
  private async editable(index: number): Promise<BufferSlot> {
    const slot = this.slots.get(index);
    if (slot?.state === 'buffer') return slot;
    const content = await this.content(index);
    const buf = this.lilio.writerDeps.pool(this.chunkSize).take();
    content.copy(buf, 0, 0, Math.min(content.byteLength, this.chunkSize));
    const fresh: BufferSlot = {
      state: 'buffer',
      buf,
      len: Math.min(content.byteLength, this.lengthOf(index)),
      touched: ++this.clock,
    };
    if (slot) await this.dropSlot(slot);
    this.slots.set(index, fresh);
    return fresh;
  }

  /** A replaced slot: its buffer goes back to the pool, its sealed chunk (never committed) is deleted. */
  private async dropSlot(slot: Slot): Promise<void> {
    if (slot.state === 'buffer') {
      this.lilio.writerDeps.pool(this.chunkSize).give(slot.buf);
      return;
    }
    const ref = slot.state === 'sealed' ? slot.ref : await slot.ref.catch(() => undefined);
    if (ref) this.orphans.push(ref);
  }

  private async sealLeastRecent(): Promise<void> {
    let oldest: number | undefined;
    let oldestTouch = Number.POSITIVE_INFINITY;
    for (const [index, slot] of this.slots.buffers) {
      if (slot.touched < oldestTouch) {
        oldest = index;
        oldestTouch = slot.touched;
      }
    }
    if (oldest !== undefined) await this.seal(oldest);
  }

  /** Starts replicating a buffer slot; waits only for an in-flight slot (backpressure). */
  private async seal(index: number): Promise<void> {
    const slot = this.slots.get(index);
    if (slot?.state !== 'buffer') return;
    const length = this.lengthOf(index);
    if (slot.len < length) slot.buf.fill(0, slot.len, length);
    const plaintext = slot.buf.subarray(0, length);
    await this.seals.acquire();
    let sealed: Awaited<ReturnType<Lilio['chunks']['seal']>>;
    try {
      sealed = await this.lilio.chunks.seal(this.ctx, plaintext);
    } catch (err) {
      this.seals.release();
      this.failure ??= err;
      throw err;
    }
    const sealing: Slot = { state: 'sealing', buf: slot.buf, len: length, ref: sealed.ref };
    this.slots.set(index, sealing);
    const pool = this.lilio.writerDeps.pool(this.chunkSize);
    let stored = false;
    sealed.ref.then(
      (ref) => {
        stored = true;
        if (this.slots.get(index) === sealing) this.slots.set(index, { state: 'sealed', ref });
        else this.orphans.push(ref);
      },
      (err) => {
        this.failure ??= err;
      },
    );
    // `ref` settles before `settled`. A failed chunk keeps its buffer out of the pool: its
    // 'sealing' slot may still be read until the state is reset.
    void sealed.settled.finally(() => {
      this.seals.release();
      if (stored) pool.give(slot.buf);
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
    if (this.size <= threshold && this.size > 0) {
      const bytes = Buffer.alloc(this.size);
      await this.readAt(bytes, 0, this.size);
      const stored = this.ctx.dataKey ? encryptChunk(this.ctx.dataKey, inlineAad(versionId), bytes) : bytes;
      await this.settleSlots();
      return { ...common, chunks: [], inline: stored.toString('base64') };
    }
    const count = Math.ceil(this.size / this.chunkSize);
    // Every chunk must hold exactly its logical length: a chunk that was the last one and is now in
    // the middle (the file grew) or that still has bytes past a truncation is rewritten.
    // Each is sealed as soon as it is loaded, so a commit holds no more buffers than the seals in
    // flight, however many chunks it rewrites (a file cut to zero and extended to 1 GiB: all of them).
    for (let index = 0; index < count; index++) {
      const slot = this.slots.get(index);
      const length = this.lengthOf(index);
      let rewrite: boolean;
      if (slot) {
        // Sealed early (evicted as least recently written) while it was the last chunk, then the
        // file grew past it: that chunk is short and would cut the file there.
        rewrite = slot.state === 'buffer' || (slot.state === 'sealing' ? slot.len : slot.ref.size) !== length;
      } else {
        const ref = base?.inline === undefined ? base?.chunks[index] : undefined;
        rewrite = !(ref !== undefined && ref.size === length && index * this.chunkSize + length <= this.baseLimit);
      }
      if (!rewrite) continue;
      await this.editable(index);
      await this.seal(index);
    }
    const chunks: ChunkRef[] = [];
    for (let index = 0; index < count; index++) {
      const slot = this.slots.get(index);
      if (!slot) {
        chunks.push(base!.chunks[index]!);
      } else if (slot.state === 'sealed') {
        chunks.push(slot.ref);
      } else if (slot.state === 'sealing') {
        chunks.push(await slot.ref);
      } else {
        throw new Error(`chunk ${index} of ${this.key} was not sealed`);
      }
    }
    if (this.failure) throw this.failure;
    return { ...common, chunks };
  }

  /** Waits for in-flight seals and records their chunks as orphans (an inline version references none). */
  private async settleSlots(): Promise<void> {
    for (const [index, slot] of this.slots) {
      this.slots.delete(index);
      await this.dropSlot(slot);
    }
  }

  private async reset(): Promise<void> {
    await this.settleSlots();
    const orphans = this.orphans;
    this.orphans = [];
    if (orphans.length > 0) await this.lilio.writerDeps.discard(orphans).catch(() => undefined);
    this.failure = undefined;
    this.dirty = false;
    this.size = this.base?.size ?? 0;
    this.baseLimit = this.size;
    if (this.base) {
      this.attrs = { ...this.base.attrs };
      this.xattrs = this.base.xattrs ? { ...this.base.xattrs } : undefined;
    }
  }
}

const EMPTY = Buffer.alloc(0);
