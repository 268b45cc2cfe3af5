import { MAX_KEY_BYTES } from '../core/names.js';
import type { ObjectSummary } from '../meta/store.js';
import { OWNER } from './buckets.js';
import { type S3Context, sendXml } from './context.js';
import { S3Error } from './errors.js';
import { etagOf, isoDate, lastModifiedMs } from './object-meta.js';
import { uriEncode } from './sigv4.js';
import { el } from './xml.js';

/**
 * ListObjectsV2 and ListObjects (v1) over the engine's paged listing. Pages
 * are what the metadata store hands out, so a listing costs what the page
 * holds, never the whole bucket. Only "/" is a delimiter (the store groups by
 * directory); another one is refused rather than answered wrongly.
 */

const MAX_KEYS = 1000;

function param(ctx: S3Context, name: string): string | undefined {
  return ctx.query.get(name);
}

function maxKeys(ctx: S3Context): number {
  const text = param(ctx, 'max-keys');
  if (text === undefined) return MAX_KEYS;
  if (!/^\d{1,10}$/.test(text)) throw new S3Error('InvalidArgument', 'max-keys must be a non-negative integer');
  return Math.min(Number(text), MAX_KEYS);
}

function delimiterOf(ctx: S3Context): '/' | undefined {
  const d = param(ctx, 'delimiter');
  if (d === undefined || d === '') return undefined;
  if (d !== '/') throw new S3Error('NotImplemented', 'Lilio lists with the delimiter "/" only');
  return '/';
}

function prefixOf(ctx: S3Context): string {
  const prefix = param(ctx, 'prefix') ?? '';
  if (Buffer.byteLength(prefix) > MAX_KEY_BYTES || prefix.includes('\0')) {
    throw new S3Error('InvalidArgument', 'prefix is not a valid key prefix');
  }
  return prefix;
}

function encoder(ctx: S3Context): (text: string) => string {
  const type = param(ctx, 'encoding-type');
  if (type === undefined || type === '') return (t) => t;
  if (type !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  return (t) => uriEncode(t, true);
}

function entry(record: ObjectSummary, encode: (t: string) => string, owner: boolean) {
  return el(
    'Contents',
    el('Key', encode(record.key)),
    el('LastModified', isoDate(lastModifiedMs(record))),
    el('ETag', etagOf(record)),
    el('Size', record.size),
    owner ? OWNER : undefined,
    el('StorageClass', 'STANDARD'),
  );
}

/** Continuation tokens are opaque to clients: base64url of the key the next page starts after. */
function decodeToken(token: string): string {
  const key = Buffer.from(token, 'base64url').toString('utf8');
  if (token === '' || Buffer.from(key, 'utf8').toString('base64url') !== token) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
  }
  return key;
}

export async function listObjectsV2(ctx: S3Context): Promise<void> {
  const prefix = prefixOf(ctx);
  const delimiter = delimiterOf(ctx);
  const limit = maxKeys(ctx);
  const encode = encoder(ctx);
  const token = param(ctx, 'continuation-token');
  const startAfter = param(ctx, 'start-after');
  const from = token !== undefined ? decodeToken(token) : startAfter || undefined;
  await ctx.lilio.getBucket(ctx.bucket);
  const page =
    limit === 0
      ? { objects: [], prefixes: [], next: undefined }
      : await ctx.lilio.list(ctx.bucket, { prefix, delimiter, startAfter: from, limit });
  const owner = param(ctx, 'fetch-owner') === 'true';
  sendXml(
    ctx.res,
    200,
    el(
      'ListBucketResult',
      el('Name', ctx.bucket),
      el('Prefix', encode(prefix)),
      delimiter ? el('Delimiter', encode(delimiter)) : undefined,
      el('MaxKeys', limit),
      param(ctx, 'encoding-type') === 'url' ? el('EncodingType', 'url') : undefined,
      el('KeyCount', page.objects.length + page.prefixes.length),
      token !== undefined ? el('ContinuationToken', token) : undefined,
      startAfter !== undefined ? el('StartAfter', encode(startAfter)) : undefined,
      el('IsTruncated', page.next !== undefined),
      page.next !== undefined
        ? el('NextContinuationToken', Buffer.from(page.next, 'utf8').toString('base64url'))
        : undefined,
      page.objects.map((o) => entry(o, encode, owner)),
      page.prefixes.map((p) => el('CommonPrefixes', el('Prefix', encode(p)))),
    ),
  );
}

export async function listObjectsV1(ctx: S3Context): Promise<void> {
  const prefix = prefixOf(ctx);
  const delimiter = delimiterOf(ctx);
  const limit = maxKeys(ctx);
  const encode = encoder(ctx);
  const marker = param(ctx, 'marker') ?? '';
  await ctx.lilio.getBucket(ctx.bucket);
  const page =
    limit === 0
      ? { objects: [], prefixes: [], next: undefined }
      : await ctx.lilio.list(ctx.bucket, { prefix, delimiter, startAfter: marker || undefined, limit });
  sendXml(
    ctx.res,
    200,
    el(
      'ListBucketResult',
      el('Name', ctx.bucket),
      el('Prefix', encode(prefix)),
      el('Marker', encode(marker)),
      // Given whenever the page is cut (S3 gives it only with a delimiter; clients take it when present).
      page.next !== undefined ? el('NextMarker', encode(page.next)) : undefined,
      el('MaxKeys', limit),
      delimiter ? el('Delimiter', encode(delimiter)) : undefined,
      param(ctx, 'encoding-type') === 'url' ? el('EncodingType', 'url') : undefined,
      el('IsTruncated', page.next !== undefined),
      page.objects.map((o) => entry(o, encode, true)),
      page.prefixes.map((p) => el('CommonPrefixes', el('Prefix', encode(p)))),
    ),
  );
}
