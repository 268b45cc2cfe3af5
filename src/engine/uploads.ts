import { createHash, randomBytes } from 'node:crypto';
import { newVersionId } from '../core/chunk-id.js';
import { hasCode, IntegrityError, InvalidError, NoSuchUploadError } from '../core/errors.js';
import { validateKey } from '../core/names.js';
import type { ChunkRef, ObjectAttrs, ObjectDraft, ObjectRecord, PartRecord, UploadRecord } from '../core/types.js';
import type { Expect, MetadataStore } from '../meta/store.js';
import { checkPartNumber } from '../meta/upload-rules.js';
import type { BucketContext } from './chunk-store.js';
import type { CommitOutcomes } from './commit-outcome.js';
import type { ObjectReader } from './object-reader.js';
import { defaultAttrs, ObjectWriter, type WriterDeps } from './object-writer.js';
import { checkPartOrder, chooseParts, multipartEtag, normalEtag, placeParts } from './upload-completion.js';
import { sealXattr } from './xattrs.js';

/**
 * Multipart uploads (S3's CreateMultipartUpload ... CompleteMultipartUpload)
 * on the engine: no HTTP here.
 *
 * A part streams into chunks exactly as an object does (ObjectWriter: pooled
 * buffers, sealing, quorum, encryption, backpressure), cut at the bucket's
 * chunk size from the part's first byte; while it streams its chunks are
 * write-held by this process's session, and one metadata step records the
 * part, which from then on owns them (as a version owns its chunks: gc never
 * takes them, the orphan scan counts them as referenced). A part that fails,
 * is refused (Content-MD5) or whose upload went away meanwhile is deleted.
 *
 * Completion is one metadata commit: a layered object (layout 'extents')
 * whose chunks are the parts' own, each placed at its part's offset, the
 * upload removed and the parts left out queued as garbage in the same step.
 * No byte is copied. An upload no part was added to for
 * uploads.expireAfterSeconds is aborted by gc (expireStale).
 */

/** The ids create() makes (hex time, then random hex): anything else names no upload and never reaches a store. */
const UPLOAD_ID = /^[0-9a-f]{36}$/;
/** Page size when completion reads every part. */
const PART_PAGE = 1000;

export interface UploadOptions {
  contentType?: string;
  /**
   * Extended attributes the object will carry (S3 x-amz-meta-*), by full
   * name ("user.color"), values in plaintext: sealed here with the bucket's
   * data key when it is encrypted, as the mount seals them.
   */
  xattrs?: Record<string, Uint8Array>;
}

/** The bucket and key the caller believes the upload is for (S3 requests name both): another upload is NoSuchUpload. */
export interface UploadTarget {
  bucket?: string;
  key?: string;
}

export interface PartOptions extends UploadTarget {
  /** MD5 (hex) the part must have; a mismatch is IntegrityError and records nothing. */
  expectMd5?: string;
  /**
   * Called with the part's MD5 and size once every byte is stored and before
   * the part is recorded: throwing refuses the part (its chunks are deleted).
   * Where the S3 layer checks Content-MD5, x-amz-checksum-*, Content-Length.
   */
  verify?: (part: { md5: Buffer; size: number }) => void | Promise<void>;
  /** Aborting it abandons the part as a failing stream does. */
  signal?: AbortSignal;
}

export interface PartResult {
  /** MD5 (hex) of the part's bytes: its ETag. */
  etag: string;
  size: number;
}

export interface PartSummary {
  partNumber: number;
  etag: string;
  size: number;
  uploadedAt: number;
}

export interface PartListing {
  upload: UploadRecord;
  parts: PartSummary[];
  isTruncated: boolean;
  /** Pass as partNumberMarker for the next page (set when truncated). */
  nextPartNumberMarker?: number;
}

export interface UploadListing {
  uploads: UploadRecord[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
}

export interface CompleteOptions extends UploadTarget {
  /** What the object's key must hold for the completion to apply (If-Match / If-None-Match); default 'any'. */
  expect?: Expect;
  attrs?: Partial<ObjectAttrs>;
}

/** What uploads need of the engine (Lilio hands it over). */
export interface UploadDeps {
  meta: MetadataStore;
  writerDeps: WriterDeps;
  outcomes: CommitOutcomes;
  bucket(name: string): Promise<BucketContext>;
  openObject(bucket: string, key: string): Promise<ObjectReader>;
  readObject(reader: ObjectReader, range?: { start: number; end: number }): AsyncIterable<Buffer>;
  /** Before a record referencing `chunks` is committed: their write holds must have landed (EngineSession.settle). */
  settle(chunks: readonly ChunkRef[]): Promise<void>;
  /** Deletes chunks that will never be recorded (and drops their write holds). */
  discard(chunks: ChunkRef[]): Promise<void>;
  minPartSize: number;
  expireAfterMs: number;
}

export class MultipartUploads {
  constructor(private readonly deps: UploadDeps) {}

  /** Starts an upload of bucket/key; nothing is visible at the key until complete(). */
  async create(bucket: string, key: string, options: UploadOptions = {}): Promise<UploadRecord> {
    validateKey(key);
    if (key.endsWith('/')) throw new InvalidError(`"${key}" names a directory: a multipart upload makes an object`);
    const ctx = await this.deps.bucket(bucket);
    const now = Date.now();
    const upload: UploadRecord = {
      id: now.toString(16).padStart(12, '0') + randomBytes(12).toString('hex'),
      bucket,
      key,
      initiated: now,
      touchedAt: now,
    };
    if (ctx.record.id) upload.bucketId = ctx.record.id;
    if (options.contentType) upload.contentType = options.contentType;
    if (options.xattrs) {
      upload.xattrs = {};
      for (const [name, value] of Object.entries(options.xattrs)) upload.xattrs[name] = sealXattr(ctx, name, value);
    }
    await this.deps.meta.createUpload(upload);
    return upload;
  }

  async get(uploadId: string, target: UploadTarget = {}): Promise<UploadRecord> {
    const upload = UPLOAD_ID.test(uploadId) ? await this.deps.meta.getUpload(uploadId) : undefined;
    const wrongTarget =
      upload &&
      ((target.bucket !== undefined && target.bucket !== upload.bucket) ||
        (target.key !== undefined && target.key !== upload.key));
    if (!upload || wrongTarget) {
      const where = target.bucket === undefined ? '' : ` for ${target.bucket}/${target.key ?? ''}`;
      throw new NoSuchUploadError(`no multipart upload ${uploadId}${where} (completed, aborted or expired?)`);
    }
    return upload;
  }

  /**
   * Streams one part into chunks and records it, replacing a part of the same
   * number. Nothing is recorded unless every byte is stored and `verify` (if
   * given) accepts the MD5; otherwise the chunks written are deleted.
   */
  async uploadPart(
    uploadId: string,
    partNumber: number,
    body: AsyncIterable<Uint8Array>,
    options: PartOptions = {},
  ): Promise<PartResult> {
    checkPartNumber(partNumber);
    const upload = await this.get(uploadId, options);
    const ctx = await this.bucketOf(upload);
    const writer = new ObjectWriter(this.deps.writerDeps, ctx, upload.key);
    const md5 = createHash('md5');
    try {
      for await (const piece of body) {
        options.signal?.throwIfAborted();
        md5.update(piece);
        await writer.write(piece);
      }
      options.signal?.throwIfAborted();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    const chunks = await writer.seal();
    const digest = md5.digest();
    const part: PartRecord = {
      uploadId,
      partNumber,
      size: writer.size,
      etag: digest.toString('hex'),
      chunkSize: ctx.record.chunkSize,
      chunks,
      uploadedAt: Date.now(),
    };
    try {
      if (options.expectMd5 !== undefined && normalEtag(options.expectMd5) !== part.etag) {
        throw new IntegrityError(`part ${partNumber}: MD5 ${part.etag} is not the expected ${options.expectMd5}`);
      }
      await options.verify?.({ md5: digest, size: part.size });
      options.signal?.throwIfAborted();
      await this.deps.settle(chunks);
      await this.deps.meta.putPart(part);
    } catch (err) {
      if (hasCode(err, 'COMMIT_UNKNOWN')) {
        if (await this.landed(part)) return { etag: part.etag, size: part.size };
        // It may still land: then the part owns the chunks. If it does not, they are still
        // write-held, and become garbage when this process's session ends. Never deleted here.
        throw err;
      }
      await this.deps.discard(chunks);
      throw err;
    }
    return { etag: part.etag, size: part.size };
  }

  /**
   * UploadPartCopy: the bytes of srcBucket/srcKey (or of [start, end) of it)
   * read through the reader and written as new chunks of this part. Chunks
   * are never shared between objects, so nothing is referenced twice.
   */
  async uploadPartCopy(
    uploadId: string,
    partNumber: number,
    srcBucket: string,
    srcKey: string,
    options: PartOptions & { range?: { start: number; end: number } } = {},
  ): Promise<PartResult> {
    checkPartNumber(partNumber);
    await this.get(uploadId, options);
    const reader = await this.deps.openObject(srcBucket, srcKey);
    const { range } = options;
    if (range && (range.start < 0 || range.end > reader.size || range.start >= range.end)) {
      throw new InvalidError(
        `range ${range.start}-${range.end - 1} is outside ${srcBucket}/${srcKey} (${reader.size} bytes)`,
      );
    }
    return this.uploadPart(uploadId, partNumber, this.deps.readObject(reader, range), options);
  }

  /** ListParts: parts in number order after `partNumberMarker`, at most `maxParts` (default 1,000). */
  async listParts(
    uploadId: string,
    options: UploadTarget & { partNumberMarker?: number; maxParts?: number } = {},
  ): Promise<PartListing> {
    const upload = await this.get(uploadId, options);
    const page = await this.deps.meta.listParts(uploadId, {
      after: options.partNumberMarker ?? 0,
      limit: options.maxParts ?? PART_PAGE,
    });
    const parts = page.parts.map(({ partNumber, etag, size, uploadedAt }) => ({ partNumber, etag, size, uploadedAt }));
    const listing: PartListing = { upload, parts, isTruncated: page.truncated };
    if (page.truncated && parts.length > 0) listing.nextPartNumberMarker = parts.at(-1)!.partNumber;
    return listing;
  }

  /** ListMultipartUploads: a bucket's uploads in (key, upload id) order, after the markers. */
  async listUploads(
    bucket: string,
    options: { prefix?: string; keyMarker?: string; uploadIdMarker?: string; maxUploads?: number } = {},
  ): Promise<UploadListing> {
    await this.deps.bucket(bucket);
    const page = await this.deps.meta.listUploads(bucket, {
      ...(options.prefix ? { prefix: options.prefix } : {}),
      // S3: the upload-id-marker counts only together with a key-marker.
      ...(options.keyMarker
        ? { after: { key: options.keyMarker, ...(options.uploadIdMarker ? { id: options.uploadIdMarker } : {}) } }
        : {}),
      limit: options.maxUploads ?? 1000,
    });
    const listing: UploadListing = { uploads: page.uploads, isTruncated: page.truncated };
    const last = page.uploads.at(-1);
    if (page.truncated && last) {
      listing.nextKeyMarker = last.key;
      listing.nextUploadIdMarker = last.id;
    }
    return listing;
  }

  /**
   * CompleteMultipartUpload: the listed parts, in ascending order, each with
   * the ETag it was given, become the object in one commit. InvalidPartOrder,
   * InvalidPart, EntityTooSmall (every part but the last below
   * uploads.minPartSize), NoSuchUpload (completed, aborted, expired).
   */
  async complete(
    uploadId: string,
    parts: ReadonlyArray<{ partNumber: number; etag: string }>,
    options: CompleteOptions = {},
  ): Promise<ObjectRecord> {
    const upload = await this.get(uploadId, options);
    checkPartOrder(parts);
    const chosen = chooseParts(parts, await this.allParts(uploadId), this.deps.minPartSize);
    const ctx = await this.bucketOf(upload);
    const chunkSize = ctx.record.chunkSize;
    const { chunks, size } = placeParts(chosen, chunkSize);
    const now = Date.now();
    const draft: ObjectDraft = {
      bucket: upload.bucket,
      key: upload.key,
      kind: 'file',
      versionId: newVersionId(),
      size,
      chunkSize,
      chunks,
      layout: 'extents',
      allocated: size,
      attrs: { ...defaultAttrs(now), ...options.attrs, ctimeMs: now },
      etag: multipartEtag(chosen.map((p) => p.etag)),
      partSizes: chosen.map((p) => p.size),
      committedAt: now,
    };
    if (upload.contentType) draft.contentType = upload.contentType;
    if (upload.xattrs) draft.xattrs = upload.xattrs;
    return this.deps.outcomes.completeUpload(uploadId, draft, options.expect ?? 'any');
  }

  /** AbortMultipartUpload: the upload goes, its parts' chunks become garbage (deleted after the grace period). */
  async abort(uploadId: string, target: UploadTarget = {}): Promise<void> {
    await this.get(uploadId, target);
    await this.deps.meta.abortUpload(uploadId);
  }

  /**
   * Aborts uploads no part was added to for uploads.expireAfterSeconds (gc
   * calls it before taking garbage). Returns how many it aborted.
   */
  async expireStale(now = Date.now()): Promise<number> {
    let aborted = 0;
    for (;;) {
      const stale = await this.deps.meta.staleUploads(now - this.deps.expireAfterMs, 100);
      for (const upload of stale) {
        try {
          await this.deps.meta.abortUpload(upload.id);
          aborted++;
        } catch (err) {
          // Completed or aborted meanwhile by someone else: nothing left to expire.
          if (!hasCode(err, 'NO_SUCH_UPLOAD')) throw err;
        }
      }
      if (stale.length < 100) return aborted;
    }
  }

  /** Every upload of every bucket with its parts, for the orphan scan and dumps. */
  async *everyPart(buckets: readonly string[]): AsyncGenerator<PartRecord> {
    for (const bucket of buckets) {
      let after: { key: string; id: string } | undefined;
      for (;;) {
        const page = await this.deps.meta.listUploads(bucket, { ...(after ? { after } : {}), limit: 1000 });
        for (const upload of page.uploads) {
          try {
            yield* (await this.allParts(upload.id)).values();
          } catch (err) {
            if (!hasCode(err, 'NO_SUCH_UPLOAD')) throw err;
          }
        }
        const last = page.uploads.at(-1);
        if (!page.truncated || !last) break;
        after = { key: last.key, id: last.id };
      }
    }
  }

  /** After a lost answer: whether the part recorded now is the one sent (read once; unreadable counts as no). */
  private async landed(part: PartRecord): Promise<boolean> {
    try {
      const [found] = (await this.deps.meta.listParts(part.uploadId, { after: part.partNumber - 1, limit: 1 })).parts;
      return (
        found !== undefined &&
        found.partNumber === part.partNumber &&
        found.uploadedAt === part.uploadedAt &&
        found.etag === part.etag &&
        found.chunks.length === part.chunks.length &&
        found.chunks.every((c, i) => c.id === part.chunks[i]!.id)
      );
    } catch {
      return false;
    }
  }

  /** Aborts every upload of a bucket (it is being deleted). */
  async abortAll(bucket: string): Promise<number> {
    let aborted = 0;
    for (;;) {
      const page = await this.deps.meta.listUploads(bucket, { limit: 1000 });
      for (const upload of page.uploads) {
        await this.deps.meta.abortUpload(upload.id).catch((err: unknown) => {
          if (!hasCode(err, 'NO_SUCH_UPLOAD')) throw err;
        });
        aborted++;
      }
      if (!page.truncated) return aborted;
    }
  }

  /** The upload's bucket, unless it was deleted and re-created since (its parts used the old data key). */
  private async bucketOf(upload: UploadRecord): Promise<BucketContext> {
    const ctx = await this.deps.bucket(upload.bucket);
    if (upload.bucketId !== undefined && ctx.record.id !== upload.bucketId) {
      throw new NoSuchUploadError(`upload ${upload.id} was for a bucket ${upload.bucket} that was deleted since`);
    }
    return ctx;
  }

  private async allParts(uploadId: string): Promise<Map<number, PartRecord>> {
    const parts = new Map<number, PartRecord>();
    let after = 0;
    for (;;) {
      const page = await this.deps.meta.listParts(uploadId, { after, limit: PART_PAGE });
      for (const part of page.parts) parts.set(part.partNumber, part);
      if (!page.truncated || page.parts.length === 0) return parts;
      after = page.parts.at(-1)!.partNumber;
    }
  }
}
