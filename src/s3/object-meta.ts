import type { IncomingHttpHeaders } from 'node:http';
import type { ObjectRecord } from '../core/types.js';
import type { BucketContext } from '../engine/chunk-store.js';
import { openXattr, sealXattr } from '../engine/xattrs.js';
import type { ObjectSummary } from '../meta/store.js';
import { S3Error } from './errors.js';

/**
 * What S3 calls an object's metadata, in Lilio's terms. x-amz-meta-NAME is
 * the user.NAME extended attribute (so `getfattr` on the mount shows what an
 * S3 client set, and the other way round), sealed in encrypted buckets like
 * any xattr. The ETag is the recorded MD5 of the body when a writer computed
 * one; otherwise one derived from the versionId with a "-1" suffix, which
 * clients know is not an MD5 (the form of a multipart ETag) and which changes
 * exactly when the content does.
 */

/** S3's limit on user-defined metadata: names and values, in bytes. */
export const MAX_USER_METADATA_BYTES = 2048;
const META_PREFIX = 'x-amz-meta-';
const XATTR_PREFIX = 'user.';

export function etagOf(record: Pick<ObjectSummary, 'etag' | 'versionId'>): string {
  return `"${record.etag ?? `${record.versionId}-1`}"`;
}

/** The user metadata a request carries, as xattrs sealed for the bucket. */
export function userMetadataFromHeaders(
  ctx: BucketContext,
  headers: IncomingHttpHeaders,
): Record<string, string> | undefined {
  const plain = userMetadataPlain(headers);
  if (!plain) return undefined;
  const xattrs: Record<string, string> = {};
  for (const [name, value] of Object.entries(plain)) xattrs[name] = sealXattr(ctx, name, value);
  return xattrs;
}

/** The x-amz-meta-* headers as extended attributes (user.NAME), values in plaintext; checked and size-capped. */
export function userMetadataPlain(headers: IncomingHttpHeaders): Record<string, Buffer> | undefined {
  let bytes = 0;
  let xattrs: Record<string, Buffer> | undefined;
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith(META_PREFIX) || raw === undefined) continue;
    const metaName = name.slice(META_PREFIX.length);
    if (metaName === '' || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(metaName)) {
      throw new S3Error('InvalidArgument', `metadata name ${name.slice(0, 60)} is not a valid name`);
    }
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    // Header values reach us as latin1 strings: their bytes are kept exactly, UTF-8 included.
    const bytesOfValue = Buffer.from(value, 'latin1');
    bytes += metaName.length + bytesOfValue.length;
    if (bytes > MAX_USER_METADATA_BYTES) {
      throw new S3Error(
        'MetadataTooLarge',
        `Your metadata headers exceed the maximum allowed metadata size (${MAX_USER_METADATA_BYTES} bytes)`,
      );
    }
    xattrs ??= {};
    xattrs[XATTR_PREFIX + metaName] = bytesOfValue;
  }
  return xattrs;
}

/**
 * The x-amz-meta-* headers of a record. Attributes set on the mount may hold
 * bytes no header can carry (control characters) or names no header may
 * have: those are left out and counted in x-amz-missing-meta, as S3 does for
 * metadata it cannot return.
 */
export function userMetadataHeaders(ctx: BucketContext, record: ObjectRecord): Record<string, string> {
  const headers: Record<string, string> = {};
  let missing = 0;
  for (const [name, stored] of Object.entries(record.xattrs ?? {})) {
    if (!name.startsWith(XATTR_PREFIX)) continue;
    const metaName = name.slice(XATTR_PREFIX.length).toLowerCase();
    const value = openXattr(ctx, name, stored).toString('latin1');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what a header cannot carry
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(metaName) || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
      missing++;
      continue;
    }
    headers[META_PREFIX + metaName] = value;
  }
  if (missing > 0) headers['x-amz-missing-meta'] = String(missing);
  return headers;
}

/** Content-Type as stored: printable ASCII, bounded. */
export function contentTypeFrom(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 256 || !/^[\x20-\x7e]+$/.test(value)) {
    throw new S3Error('InvalidArgument', 'Content-Type must be printable ASCII, at most 256 characters');
  }
  return value;
}

/** Last-Modified as S3 reports it: the modification time, whole seconds. */
export function lastModifiedMs(record: Pick<ObjectSummary, 'attrs'>): number {
  return Math.floor(record.attrs.mtimeMs / 1000) * 1000;
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

export function objectHeaders(ctx: BucketContext, record: ObjectRecord): Record<string, string> {
  return {
    'content-type': record.contentType ?? (record.kind === 'dir' ? 'application/x-directory' : 'binary/octet-stream'),
    etag: etagOf(record),
    'last-modified': new Date(lastModifiedMs(record)).toUTCString(),
    'accept-ranges': 'bytes',
    ...userMetadataHeaders(ctx, record),
  };
}
