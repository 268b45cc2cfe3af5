import { hasCode } from '../core/errors.js';
import type { ObjectRecord } from '../core/types.js';
import { multipartEtag, normalEtag } from '../engine/upload-completion.js';
import { checkConditions, conditionHeaders, hasConditions } from './conditions.js';
import { declaredLength, header, readSmallBody, refuseBody, type S3Context, sendXml, verifiedBody } from './context.js';
import { keyAllowsBucket } from './credentials.js';
import { S3Error } from './errors.js';
import { uploadIdOf } from './multipart-list.js';
import { contentTypeFrom, etagOf, isoDate, userMetadataPlain } from './object-meta.js';
import { committed, copySource, writeExpectation } from './object-write.js';
import { uriEncode } from './sigv4.js';
import { childrenNamed, childText, el, parseXml, type XmlNode, XmlSyntaxError } from './xml.js';

export { listMultipartUploads, listParts } from './multipart-list.js';

/**
 * Multipart upload, the S3 side, over the engine's uploads (src/engine/uploads.ts):
 * a part streams through the same body checks as a PUT (aws-chunked and its
 * signatures, x-amz-content-sha256, Content-MD5, x-amz-checksum-*, length)
 * straight into chunks, and is recorded only once every check passed;
 * completion is one metadata commit. Content-Type and x-amz-meta-* are taken
 * at CreateMultipartUpload, as S3 does, and stored the way a PUT stores them.
 *
 * Engine codes map in errors.ts: NoSuchUpload 404, InvalidPart 400,
 * InvalidPartOrder 400, EntityTooSmall 400.
 */

const GiB = 1024 ** 3;
/** S3's largest part (and largest UploadPartCopy source range). */
const MAX_PART_SIZE = 5 * GiB;
/** A CompleteMultipartUpload body: 10,000 parts with an ETag and a checksum each fit well within this. */
const COMPLETE_BODY_LIMIT = 4 * 1024 * 1024;

function partNumberOf(ctx: S3Context): number {
  const text = ctx.query.get('partNumber');
  if (text === undefined || !/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 10_000) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
  }
  return Number(text);
}

export async function createMultipartUpload(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  const contentType = contentTypeFrom(header(ctx, 'content-type'));
  // Plaintext: the engine seals them with the bucket's key, as the mount does.
  const xattrs = userMetadataPlain(ctx.req.headers);
  const upload = await ctx.lilio.uploads.create(ctx.bucket, ctx.key, {
    ...(contentType ? { contentType } : {}),
    ...(xattrs ? { xattrs } : {}),
  });
  sendXml(
    ctx.res,
    200,
    el('InitiateMultipartUploadResult', el('Bucket', ctx.bucket), el('Key', ctx.key), el('UploadId', upload.id)),
  );
}

export async function uploadPart(ctx: S3Context): Promise<void> {
  const uploadId = uploadIdOf(ctx);
  const partNumber = partNumberOf(ctx);
  const length = declaredLength(ctx);
  if (length === undefined) {
    throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  if (length > MAX_PART_SIZE) {
    throw new S3Error('EntityTooLarge', `Your proposed upload exceeds the maximum part size (${MAX_PART_SIZE} bytes)`);
  }
  const target = { bucket: ctx.bucket, key: ctx.key };
  // The upload is known before the client is told to send the part (Expect: 100-continue).
  await ctx.lilio.uploads.get(uploadId, target);
  ctx.sendContinue();
  const body = verifiedBody(ctx, length);
  const part = await ctx.lilio.uploads.uploadPart(uploadId, partNumber, body.stream, {
    ...target,
    // Every digest was checked as the stream ended; this throws if it did not end.
    verify: () => void body.result(),
  });
  const checksum = body.result().checksumHeader;
  ctx.res.writeHead(200, {
    etag: `"${part.etag}"`,
    'content-length': '0',
    ...(checksum ? { [checksum[0]]: checksum[1] } : {}),
  });
  ctx.res.end();
}

/** x-amz-copy-source-range: exactly `bytes=FIRST-LAST` inside the source, as S3 asks. */
function copyRange(ctx: S3Context, size: number): { start: number; end: number } | undefined {
  const text = header(ctx, 'x-amz-copy-source-range');
  if (text === undefined) return undefined;
  const m = /^bytes=(\d{1,16})-(\d{1,16})$/.exec(text.trim());
  if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) >= size) {
    throw new S3Error(
      'InvalidArgument',
      `The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy, within the source object of size ${size}`,
    );
  }
  return { start: Number(m[1]), end: Number(m[2]) + 1 };
}

export async function uploadPartCopy(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  const uploadId = uploadIdOf(ctx);
  const partNumber = partNumberOf(ctx);
  const source = copySource(ctx);
  if (!keyAllowsBucket(ctx.auth.key, source.bucket)) throw new S3Error('AccessDenied', 'Access Denied');
  const target = { bucket: ctx.bucket, key: ctx.key };
  await ctx.lilio.uploads.get(uploadId, target);
  // One reader holds one version of the source: conditions, range and bytes all describe it.
  const reader = await ctx.lilio.openObject(source.bucket, source.key);
  const conditions = conditionHeaders(ctx.req.headers, 'x-amz-copy-source-');
  if (hasConditions(conditions)) checkConditions(conditions, reader.record, 'copy');
  const range = copyRange(ctx, reader.size);
  const bytes = range ? range.end - range.start : reader.size;
  if (bytes > MAX_PART_SIZE) {
    throw new S3Error(
      'InvalidRequest',
      `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_PART_SIZE}`,
    );
  }
  const part = await ctx.lilio.uploads.uploadPart(uploadId, partNumber, ctx.lilio.readObject(reader, range), target);
  sendXml(ctx.res, 200, el('CopyPartResult', el('LastModified', isoDate(Date.now())), el('ETag', `"${part.etag}"`)));
}

/** Where the completed object is, as the client addressed this server. */
function locationOf(ctx: S3Context): string {
  const host = header(ctx, 'host') ?? 'localhost';
  const key = uriEncode(ctx.key, true);
  return host.startsWith(`${ctx.bucket}.`) ? `http://${host}/${key}` : `http://${host}/${ctx.bucket}/${key}`;
}

export async function completeMultipartUpload(ctx: S3Context): Promise<void> {
  const uploadId = uploadIdOf(ctx);
  const target = { bucket: ctx.bucket, key: ctx.key };
  const expect = await writeExpectation(ctx);
  const parts = parseCompleteBody((await readSmallBody(ctx, COMPLETE_BODY_LIMIT)).toString('utf8'));
  let record: ObjectRecord;
  try {
    record = await committed(expect, () => ctx.lilio.uploads.complete(uploadId, parts, { ...target, expect }));
  } catch (err) {
    const earlier = hasCode(err, 'NO_SUCH_UPLOAD') ? await completedBefore(ctx, parts) : undefined;
    if (!earlier) throw err;
    record = earlier;
  }
  sendXml(
    ctx.res,
    200,
    el(
      'CompleteMultipartUploadResult',
      el('Location', locationOf(ctx)),
      el('Bucket', ctx.bucket),
      el('Key', ctx.key),
      el('ETag', etagOf(record)),
    ),
  );
}

/**
 * A completion repeated after its answer was lost (SDKs retry): the upload is
 * gone, and the key holds exactly what these parts made (the multipart ETag
 * of their MD5s). S3 answers such a retry with success; so do we.
 */
async function completedBefore(
  ctx: S3Context,
  parts: ReadonlyArray<{ etag: string }>,
): Promise<ObjectRecord | undefined> {
  const etag = multipartEtag(parts.map((p) => normalEtag(p.etag)));
  try {
    const current = await ctx.lilio.headObject(ctx.bucket, ctx.key);
    return current.etag === etag ? current : undefined;
  } catch (err) {
    if (hasCode(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

export async function abortMultipartUpload(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  const uploadId = uploadIdOf(ctx);
  await ctx.lilio.uploads.abort(uploadId, { bucket: ctx.bucket, key: ctx.key });
  ctx.res.writeHead(204).end();
}

/** The part list of a CompleteMultipartUpload body, in the order given (the engine checks the order). */
export function parseCompleteBody(text: string): Array<{ partNumber: number; etag: string }> {
  const malformed = () =>
    new S3Error(
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema',
    );
  let root: XmlNode;
  try {
    root = parseXml(text);
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw malformed();
    throw err;
  }
  if (root.name !== 'CompleteMultipartUpload') throw malformed();
  const parts = childrenNamed(root, 'Part').map((p) => {
    const number = childText(p, 'PartNumber')?.trim() ?? '';
    const etag = childText(p, 'ETag');
    if (!/^\d{1,5}$/.test(number) || Number(number) < 1 || Number(number) > 10_000 || etag === undefined) {
      throw malformed();
    }
    return { partNumber: Number(number), etag: etag.trim() };
  });
  if (parts.length === 0 || parts.length > 10_000) throw malformed();
  return parts;
}
