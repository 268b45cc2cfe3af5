import { createHash } from 'node:crypto';
import { hasCode } from '../core/errors.js';
import type { ObjectRecord } from '../core/types.js';
import type { CommitOptions } from '../engine/object-writer.js';
import { resealXattrs } from '../engine/xattrs.js';
import type { Expect } from '../meta/store.js';
import { checkConditions, conditionHeaders, hasConditions } from './conditions.js';
import { declaredLength, header, type S3Context, sendXml, verifiedBody } from './context.js';
import { keyAllowsBucket } from './credentials.js';
import { S3Error } from './errors.js';
import { contentTypeFrom, etagOf, isoDate, lastModifiedMs, userMetadataFromHeaders } from './object-meta.js';
import { el } from './xml.js';

/**
 * PutObject and CopyObject: bytes stream into a Lilio writer (chunks sealed
 * and replicated as they fill), every check runs before the commit, and the
 * commit is the one metadata compare-and-set that makes the object visible.
 * A copy reads the source through a reader and writes new chunks: chunks are
 * never shared between objects, so deleting one never touches the other.
 */

const PRECONDITION = 'At least one of the pre-conditions you specified did not hold';

/** If-None-Match: * and If-Match on a write, as the commit's expectation. */
export async function writeExpectation(ctx: S3Context): Promise<Expect> {
  const ifNoneMatch = header(ctx, 'if-none-match');
  const ifMatch = header(ctx, 'if-match');
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw new S3Error('NotImplemented', 'If-None-Match on a write takes only "*"');
  }
  if (ifMatch !== undefined) {
    if (ifNoneMatch !== undefined)
      throw new S3Error('InvalidRequest', 'If-Match and If-None-Match cannot be combined on a write');
    const current = await ctx.lilio.headObject(ctx.bucket, ctx.key);
    checkConditions({ ifMatch }, current, 'copy');
    return { version: current.version };
  }
  return ifNoneMatch !== undefined ? 'absent' : 'any';
}

/** The commit of a conditional write, its lost race reported as the precondition it broke. */
export async function committed(expect: Expect, commit: () => Promise<ObjectRecord>): Promise<ObjectRecord> {
  try {
    return await commit();
  } catch (err) {
    if (expect !== 'any' && hasCode(err, 'CONFLICT')) throw new S3Error('PreconditionFailed', PRECONDITION);
    throw err;
  }
}

function checkMarker(key: string, size: number | undefined): void {
  if (key.endsWith('/') && size !== 0) {
    throw new S3Error(
      'InvalidArgument',
      `"${key.slice(0, 80)}" ends with "/": Lilio stores it as a directory marker, which takes an empty body`,
    );
  }
}

function checkSize(ctx: S3Context, size: number): void {
  const limit = Math.min(ctx.settings.maxObjectSize, ctx.lilio.config.writes.maxFileSize);
  if (size > limit) {
    throw new S3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed size (${limit} bytes)`);
  }
}

export async function putObject(ctx: S3Context): Promise<void> {
  const { lilio, req, res } = ctx;
  const length = declaredLength(ctx);
  if (length === undefined)
    throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  checkSize(ctx, length);
  checkMarker(ctx.key, length);
  const contentType = contentTypeFrom(header(ctx, 'content-type'));
  // Names, bucket and preconditions are settled before the client is told to send the body.
  const bucket = await lilio.bucket(ctx.bucket);
  const xattrs = userMetadataFromHeaders(bucket, req.headers);
  const expect = await writeExpectation(ctx);
  ctx.sendContinue();
  const body = verifiedBody(ctx, length);
  const options = (): CommitOptions => ({
    expect,
    kind: ctx.key.endsWith('/') ? 'dir' : 'file',
    contentType,
    xattrs,
    etag: body.result().md5Hex,
  });
  const record = await committed(expect, () => lilio.putObject(ctx.bucket, ctx.key, body.stream, options));
  const checksum = body.result().checksumHeader;
  res.writeHead(200, {
    etag: etagOf(record),
    'content-length': '0',
    ...(checksum ? { [checksum[0]]: checksum[1] } : {}),
  });
  res.end();
}

/** x-amz-copy-source: [/]bucket/key, percent-encoded; a versionId is refused (Lilio keeps one version). */
export function copySource(ctx: S3Context): { bucket: string; key: string } {
  const raw = header(ctx, 'x-amz-copy-source')!;
  const mark = raw.indexOf('?');
  if (mark >= 0) {
    if (/^versionId=/.test(raw.slice(mark + 1)) && !/^versionId=null$/.test(raw.slice(mark + 1))) {
      throw new S3Error('NotImplemented', 'copying a given version is not supported (Lilio keeps one version)');
    }
  }
  let path: string;
  try {
    path = decodeURIComponent(mark < 0 ? raw : raw.slice(0, mark));
  } catch {
    throw new S3Error('InvalidArgument', 'x-amz-copy-source is not validly encoded');
  }
  if (path.startsWith('/')) path = path.slice(1);
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1)
    throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  return { bucket: path.slice(0, slash), key: path.slice(slash + 1) };
}

export async function copyObject(ctx: S3Context): Promise<void> {
  const { lilio, req, res } = ctx;
  const source = copySource(ctx);
  if (!keyAllowsBucket(ctx.auth.key, source.bucket)) throw new S3Error('AccessDenied', 'Access Denied');
  const directive = (header(ctx, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE')
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.');
  const tagging = header(ctx, 'x-amz-tagging-directive');
  if (tagging !== undefined && tagging.toUpperCase() !== 'COPY')
    throw new S3Error('NotImplemented', 'tagging is not supported');
  const from = await lilio.bucket(source.bucket);
  const to = await lilio.bucket(ctx.bucket);
  const reader = await lilio.openObject(source.bucket, source.key);
  const record = reader.record;
  const conditions = conditionHeaders(req.headers, 'x-amz-copy-source-');
  if (hasConditions(conditions)) checkConditions(conditions, record, 'copy');
  if (source.bucket === ctx.bucket && source.key === ctx.key && directive === 'COPY') {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  checkSize(ctx, record.size);
  checkMarker(ctx.key, record.size);
  const contentType = directive === 'REPLACE' ? contentTypeFrom(header(ctx, 'content-type')) : record.contentType;
  const xattrs =
    directive === 'REPLACE' ? userMetadataFromHeaders(to, req.headers) : resealXattrs(from, to, record.xattrs);
  const expect = await writeExpectation(ctx);
  const md5 = createHash('md5');
  async function* bytes(): AsyncGenerator<Buffer> {
    for await (const piece of lilio.readObject(reader)) {
      if (record.etag === undefined) md5.update(piece);
      yield piece;
    }
  }
  const copied = await committed(expect, () =>
    lilio.putObject(ctx.bucket, ctx.key, bytes(), () => ({
      expect,
      kind: ctx.key.endsWith('/') ? 'dir' : 'file',
      contentType,
      xattrs,
      // The bytes are the source's: its ETag holds, and one computed on the way when it had none.
      etag: record.etag ?? md5.digest('hex'),
    })),
  );
  sendXml(
    res,
    200,
    el('CopyObjectResult', el('LastModified', isoDate(lastModifiedMs(copied))), el('ETag', etagOf(copied))),
  );
}
