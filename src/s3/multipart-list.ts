import { MAX_KEY_BYTES } from '../core/names.js';
import type { UploadRecord } from '../core/types.js';
import type { PartListing } from '../engine/uploads.js';
import { OWNER } from './buckets.js';
import { refuseBody, type S3Context, sendXml } from './context.js';
import { S3Error } from './errors.js';
import { isoDate } from './object-meta.js';
import { uriEncode } from './sigv4.js';
import { el, type XmlNode } from './xml.js';

/**
 * ListParts and ListMultipartUploads over the engine's paged upload store:
 * a page costs what it holds. Markers and limits are client input and are
 * checked before the store is asked anything.
 */

const PAGE = 1000;
const INITIATOR = el('Initiator', el('ID', 'lilio'), el('DisplayName', 'lilio'));

/** An upload id as this server hands them out (uploads.ts): anything else names no upload, and reaches no store. */
const UPLOAD_ID = /^[0-9a-f]{36}$/;

export function noSuchUpload(): S3Error {
  return new S3Error(
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  );
}

/** The request's uploadId, its shape checked. */
export function uploadIdOf(ctx: S3Context): string {
  const id = ctx.query.get('uploadId');
  if (id === undefined || id === '') throw new S3Error('InvalidRequest', 'this operation needs an uploadId');
  if (!UPLOAD_ID.test(id)) throw noSuchUpload();
  return id;
}

function count(ctx: S3Context, name: string, max: number): number | undefined {
  const text = ctx.query.get(name);
  if (text === undefined) return undefined;
  if (!/^\d{1,10}$/.test(text)) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`);
  return Math.min(Number(text), max);
}

function encoder(ctx: S3Context): ((text: string) => string) | undefined {
  const type = ctx.query.get('encoding-type');
  if (type === undefined || type === '') return undefined;
  if (type !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  return (t) => uriEncode(t, true);
}

function keyParam(ctx: S3Context, name: string): string {
  const value = ctx.query.get(name) ?? '';
  if (Buffer.byteLength(value) > MAX_KEY_BYTES || value.includes('\0')) {
    throw new S3Error('InvalidArgument', `${name} is not a valid key`);
  }
  return value;
}

export async function listParts(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  const uploadId = uploadIdOf(ctx);
  const marker = count(ctx, 'part-number-marker', 10_000) ?? 0;
  const maxParts = count(ctx, 'max-parts', PAGE) ?? PAGE;
  const encode = encoder(ctx);
  const target = { bucket: ctx.bucket, key: ctx.key };
  let listing: Pick<PartListing, 'parts' | 'isTruncated' | 'nextPartNumberMarker'>;
  if (maxParts === 0) {
    // Nothing to list, but the upload must still exist.
    await ctx.lilio.uploads.get(uploadId, target);
    listing = { parts: [], isTruncated: false };
  } else {
    listing = await ctx.lilio.uploads.listParts(uploadId, { ...target, partNumberMarker: marker, maxParts });
  }
  sendXml(
    ctx.res,
    200,
    el(
      'ListPartsResult',
      el('Bucket', ctx.bucket),
      el('Key', encode ? encode(ctx.key) : ctx.key),
      el('UploadId', uploadId),
      INITIATOR,
      OWNER,
      el('StorageClass', 'STANDARD'),
      el('PartNumberMarker', marker),
      listing.isTruncated && listing.nextPartNumberMarker !== undefined
        ? el('NextPartNumberMarker', listing.nextPartNumberMarker)
        : undefined,
      el('MaxParts', maxParts),
      el('IsTruncated', listing.isTruncated),
      encode ? el('EncodingType', 'url') : undefined,
      listing.parts.map((p) =>
        el(
          'Part',
          el('PartNumber', p.partNumber),
          el('LastModified', isoDate(p.uploadedAt)),
          el('ETag', `"${p.etag}"`),
          el('Size', p.size),
        ),
      ),
    ),
  );
}

interface UploadsPage {
  uploads: UploadRecord[];
  prefixes: string[];
  /** Where the next page starts, when this one is truncated. */
  next?: { key: string; uploadId?: string };
}

/**
 * One page of a bucket's uploads, grouped by `delimiter` after `prefix` when
 * one is given: a common prefix counts as one entry, as in S3. Resuming at a
 * key-marker that is itself a common prefix skips everything under it.
 */
async function uploadsPage(
  ctx: S3Context,
  options: { prefix: string; delimiter: string; keyMarker: string; uploadIdMarker: string; limit: number },
): Promise<UploadsPage> {
  const { prefix, delimiter, limit } = options;
  const page: UploadsPage = { uploads: [], prefixes: [] };
  if (limit === 0) return page;
  const groupOf = (key: string): string | undefined => {
    if (delimiter === '') return undefined;
    const at = key.indexOf(delimiter, prefix.length);
    return at < 0 ? undefined : key.slice(0, at + delimiter.length);
  };
  let keyMarker = options.keyMarker;
  let uploadIdMarker = options.uploadIdMarker;
  let skip = keyMarker !== '' && groupOf(keyMarker) === keyMarker ? keyMarker : undefined;
  let entries = 0;
  for (;;) {
    const listing = await ctx.lilio.uploads.listUploads(ctx.bucket, {
      ...(prefix ? { prefix } : {}),
      ...(keyMarker ? { keyMarker } : {}),
      ...(uploadIdMarker ? { uploadIdMarker } : {}),
      maxUploads: delimiter === '' ? limit : PAGE,
    });
    for (const upload of listing.uploads) {
      if (skip !== undefined && upload.key.startsWith(skip)) continue;
      const group = groupOf(upload.key);
      if (entries === limit) return page;
      if (group !== undefined) {
        page.prefixes.push(group);
        page.next = { key: group };
        skip = group;
      } else {
        page.uploads.push(upload);
        page.next = { key: upload.key, uploadId: upload.id };
      }
      entries++;
    }
    if (!listing.isTruncated || listing.nextKeyMarker === undefined) break;
    if (delimiter === '') return page;
    keyMarker = listing.nextKeyMarker;
    uploadIdMarker = listing.nextUploadIdMarker ?? '';
  }
  page.next = undefined;
  return page;
}

export async function listMultipartUploads(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  const prefix = keyParam(ctx, 'prefix');
  const keyMarker = keyParam(ctx, 'key-marker');
  const uploadIdMarker = keyMarker === '' ? '' : (ctx.query.get('upload-id-marker') ?? '');
  if (uploadIdMarker !== '' && !UPLOAD_ID.test(uploadIdMarker)) {
    throw new S3Error('InvalidArgument', 'upload-id-marker is not an upload id');
  }
  const delimiter = ctx.query.get('delimiter') ?? '';
  if (delimiter.length > 32 || delimiter.includes('\0')) throw new S3Error('InvalidArgument', 'delimiter is not valid');
  const maxUploads = count(ctx, 'max-uploads', PAGE) ?? PAGE;
  const encode = encoder(ctx) ?? ((t: string) => t);
  // Unknown bucket: NoSuchBucket, before any listing.
  await ctx.lilio.bucket(ctx.bucket);
  const page = await uploadsPage(ctx, { prefix, delimiter, keyMarker, uploadIdMarker, limit: maxUploads });
  const root: XmlNode = el(
    'ListMultipartUploadsResult',
    el('Bucket', ctx.bucket),
    el('KeyMarker', encode(keyMarker)),
    el('UploadIdMarker', uploadIdMarker),
    page.next ? el('NextKeyMarker', encode(page.next.key)) : undefined,
    page.next ? el('NextUploadIdMarker', page.next.uploadId ?? '') : undefined,
    el('Prefix', encode(prefix)),
    delimiter !== '' ? el('Delimiter', encode(delimiter)) : undefined,
    el('MaxUploads', maxUploads),
    el('IsTruncated', page.next !== undefined),
    ctx.query.get('encoding-type') === 'url' ? el('EncodingType', 'url') : undefined,
    page.uploads.map((u) =>
      el(
        'Upload',
        el('Key', encode(u.key)),
        el('UploadId', u.id),
        INITIATOR,
        OWNER,
        el('StorageClass', 'STANDARD'),
        el('Initiated', isoDate(u.initiated)),
      ),
    ),
    page.prefixes.map((p) => el('CommonPrefixes', el('Prefix', encode(p)))),
  );
  sendXml(ctx.res, 200, root);
}
