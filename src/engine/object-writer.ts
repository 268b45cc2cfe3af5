import type { BufferPool } from '../core/buffer-pool.js';
import { newVersionId } from '../core/chunk-id.js';
import { encryptChunk } from '../core/crypto.js';
import { hasCode, LilioError } from '../core/errors.js';
import { Semaphore } from '../core/semaphore.js';
import type { ChunkRef, EntryKind, ObjectAttrs, ObjectDraft, ObjectRecord } from '../core/types.js';
import type { Expect, MetadataStore } from '../meta/store.js';
import type { BucketContext, ChunkStore } from './chunk-store.js';

/** What the writer needs of the engine; kept narrow so the FUSE writer can share it. */
export interface WriterDeps {
  chunks: ChunkStore;
  meta: MetadataStore;
  pool(chunkSize: number): BufferPool;
  inlineThreshold: number;
  chunksInFlightPerObject: number;
  /** Deletes chunks of a write that will never be committed. */
  discard(chunks: ChunkRef[]): Promise<void>;
  /** Commits a version whose `fresh` chunks were written for it (Lilio.commitRecord: resolves lost answers). */
  commit(draft: ObjectDraft, expect: Expect, fresh: readonly ChunkRef[]): Promise<ObjectRecord>;
  /** Called with a version's chunks just before its commit (see EngineSession.settle). */
  settle?(chunks: readonly ChunkRef[]): Promise<void>;
}

export interface CommitOptions {
  expect?: Expect;
  kind?: EntryKind;
  attrs?: Partial<ObjectAttrs>;
  xattrs?: Record<string, string>;
  contentType?: string;
  /** The S3 ETag of the bytes written (see ObjectRecord.etag). */
  etag?: string;
}

/** The AAD of inline ciphertext: bound to its version, so it cannot be swapped into another record. */
export function inlineAad(versionId: string): string {
  return `inline:${versionId}`;
}

export function defaultAttrs(now = Date.now(), kind: EntryKind = 'file'): ObjectAttrs {
  return {
    mode: kind === 'dir' ? 0o755 : kind === 'symlink' ? 0o777 : 0o644,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    mtimeMs: now,
    atimeMs: now,
    ctimeMs: now,
  };
}

/**
 * Streams one new object version into chunks. Bytes are copied into a pooled
 * chunk buffer; a full buffer is sealed (encrypted, replicated) while the next
 * fills. At most `chunksInFlightPerObject` chunks of this object are being
 * replicated at once: `write` waits beyond that, which is the backpressure
 * that keeps memory flat whatever the object size. Nothing is visible until
 * `commit`, which is one metadata compare-and-set; a failure anywhere deletes
 * what this writer stored and leaves the previous version untouched, except
 * a commit whose outcome is unknown (CommitUnknownError): its chunks stay.
 */
export class ObjectWriter {
  private buffer: Buffer | undefined;
  private filled = 0;
  private readonly refs: Array<Promise<ChunkRef>> = [];
  private readonly settled: Array<Promise<void>> = [];
  private readonly slots: Semaphore;
  private failure: unknown;
  private finished = false;
  private written = 0;

  constructor(
    private readonly deps: WriterDeps,
    private readonly ctx: BucketContext,
    readonly key: string,
    private readonly chunkSize: number = ctx.record.chunkSize,
  ) {
    this.slots = new Semaphore(deps.chunksInFlightPerObject);
  }

  /** Bytes accepted so far. */
  get size(): number {
    return this.written;
  }

  async write(data: Uint8Array): Promise<void> {
    this.assertOpen();
    let offset = 0;
    while (offset < data.byteLength) {
      if (!this.buffer) {
        this.buffer = this.deps.pool(this.chunkSize).take();
        this.filled = 0;
      }
      const n = Math.min(data.byteLength - offset, this.chunkSize - this.filled);
      this.buffer.set(data.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      this.written += n;
      if (this.filled === this.chunkSize) await this.sealBuffer();
    }
  }

  /** Waits for every chunk, then makes the version visible in one commit. */
  async commit(options: CommitOptions = {}): Promise<ObjectRecord> {
    this.assertOpen();
    this.finished = true;
    const versionId = newVersionId();
    let inline: string | undefined;
    try {
      if (this.refs.length === 0 && this.filled > 0 && this.filled <= this.deps.inlineThreshold) {
        const bytes = this.buffer!.subarray(0, this.filled);
        const stored = this.ctx.dataKey ? encryptChunk(this.ctx.dataKey, inlineAad(versionId), bytes) : bytes;
        inline = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).toString('base64');
        this.releaseBuffer();
      } else if (this.filled > 0) {
        await this.sealBuffer();
      } else {
        this.releaseBuffer();
      }
      const chunks = await Promise.all(this.refs);
      if (this.failure) throw this.failure;
      const now = Date.now();
      const kind = options.kind ?? 'file';
      const draft: ObjectDraft = {
        bucket: this.ctx.record.name,
        key: this.key,
        kind,
        versionId,
        size: this.written,
        chunkSize: this.chunkSize,
        chunks,
        attrs: { ...defaultAttrs(now, kind), ...options.attrs, ctimeMs: now },
        committedAt: now,
      };
      if (inline !== undefined) draft.inline = inline;
      if (options.xattrs) draft.xattrs = options.xattrs;
      if (options.contentType) draft.contentType = options.contentType;
      if (options.etag) draft.etag = options.etag;
      return await this.deps.commit(draft, options.expect ?? 'any', chunks);
    } catch (err) {
      // A commit that may have landed keeps its chunks: the engine queued them as garbage if it did
      // not, or left them to the orphan scan if it could not tell. Deleting them could cut a version.
      await this.cleanUp(hasCode(err, 'COMMIT_UNKNOWN'));
      throw err;
    }
  }

  /**
   * Seals what is buffered and waits for every chunk, committing nothing: for
   * chunks another record takes (a multipart upload's part). The chunks stay
   * write-held by the session until that record is committed. On failure
   * whatever was stored is deleted, as abort() does.
   */
  async seal(): Promise<ChunkRef[]> {
    this.assertOpen();
    this.finished = true;
    try {
      if (this.filled > 0) await this.sealBuffer();
      else this.releaseBuffer();
      const chunks = await Promise.all(this.refs);
      if (this.failure) throw this.failure;
      return chunks;
    } catch (err) {
      await this.cleanUp();
      throw err;
    }
  }

  /** Abandons the write: deletes whatever chunks were stored. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.cleanUp();
  }

  private async sealBuffer(): Promise<void> {
    const buffer = this.buffer!;
    const plaintext = buffer.subarray(0, this.filled);
    this.buffer = undefined;
    this.filled = 0;
    await this.slots.acquire();
    let sealed: Awaited<ReturnType<ChunkStore['seal']>>;
    try {
      sealed = await this.deps.chunks.seal(this.ctx, plaintext);
    } catch (err) {
      this.slots.release();
      this.deps.pool(this.chunkSize).give(buffer);
      this.fail(err);
      throw err;
    }
    sealed.ref.catch((err) => this.fail(err));
    this.refs.push(sealed.ref);
    this.settled.push(
      sealed.settled.finally(() => {
        this.slots.release();
        this.deps.pool(this.chunkSize).give(buffer);
      }),
    );
  }

  private fail(err: unknown): void {
    this.failure ??= err;
  }

  private assertOpen(): void {
    if (this.failure) throw this.failure;
    if (this.finished) throw new LilioError('INVALID', `writer for "${this.key}" is already committed or aborted`);
  }

  private releaseBuffer(): void {
    if (this.buffer) this.deps.pool(this.chunkSize).give(this.buffer);
    this.buffer = undefined;
    this.filled = 0;
  }

  private async cleanUp(keepChunks = false): Promise<void> {
    this.releaseBuffer();
    const results = await Promise.allSettled(this.refs);
    const stored = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    await Promise.allSettled(this.settled);
    if (stored.length > 0 && !keepChunks) await this.deps.discard(stored);
  }
}
