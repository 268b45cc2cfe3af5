import { hasCode } from '../core/errors.js';
import { validateBucketName } from '../core/names.js';
import { header, readSmallBody, refuseBody, type S3Context, sendXml } from './context.js';
import { keyAllowsBucket } from './credentials.js';
import { S3Error, toS3Error } from './errors.js';
import { isoDate } from './object-meta.js';
import { childText, el, parseXml, XmlSyntaxError } from './xml.js';

/** The one owner every object has: Lilio has no per-user ownership. */
export const OWNER = el('Owner', el('ID', 'lilio'), el('DisplayName', 'lilio'));

/** CreateBucketConfiguration is a few hundred bytes. */
const CREATE_BODY_LIMIT = 64 * 1024;

export async function listBuckets(ctx: S3Context): Promise<void> {
  const buckets = (await ctx.lilio.listBuckets()).filter((b) => keyAllowsBucket(ctx.auth.key, b.name));
  sendXml(
    ctx.res,
    200,
    el(
      'ListAllMyBucketsResult',
      OWNER,
      el(
        'Buckets',
        buckets.map((b) => el('Bucket', el('Name', b.name), el('CreationDate', isoDate(b.createdAt)))),
      ),
    ),
  );
}

function bucketNameFor(ctx: S3Context): string {
  try {
    return validateBucketName(ctx.bucket);
  } catch (err) {
    throw new S3Error('InvalidBucketName', (err as Error).message);
  }
}

export async function createBucket(ctx: S3Context): Promise<void> {
  const name = bucketNameFor(ctx);
  const acl = header(ctx, 'x-amz-acl');
  if (acl !== undefined && acl !== 'private')
    throw new S3Error('NotImplemented', 'bucket ACLs other than private are not supported');
  if (header(ctx, 'x-amz-bucket-object-lock-enabled') === 'true') {
    throw new S3Error('NotImplemented', 'object lock is not supported');
  }
  const body = await readSmallBody(ctx, CREATE_BODY_LIMIT);
  if (body.length > 0) {
    try {
      const root = parseXml(body.toString('utf8'));
      if (root.name !== 'CreateBucketConfiguration') throw new XmlSyntaxError('root is not CreateBucketConfiguration');
      // Any LocationConstraint is accepted: every bucket lives where this Lilio's backends are.
      childText(root, 'LocationConstraint');
    } catch (err) {
      if (err instanceof XmlSyntaxError)
        throw new S3Error(
          'MalformedXML',
          'The XML you provided was not well-formed or did not validate against our published schema',
        );
      throw err;
    }
  }
  // A Lilio extension: x-lilio-encrypt: true creates the bucket encrypted (AES-256-GCM under the master key).
  const encrypt = header(ctx, 'x-lilio-encrypt') === 'true';
  try {
    await ctx.lilio.createBucket(name, { encrypt });
  } catch (err) {
    if (hasCode(err, 'EXISTS')) {
      throw new S3Error(
        'BucketAlreadyOwnedByYou',
        'Your previous request to create the named bucket succeeded and you already own it.',
      );
    }
    throw err;
  }
  ctx.res.writeHead(200, { location: `/${name}`, 'content-length': '0' }).end();
}

export async function headBucket(ctx: S3Context): Promise<void> {
  await ctx.lilio.getBucket(ctx.bucket);
  ctx.res.writeHead(200, { 'x-amz-bucket-region': ctx.settings.region, 'content-length': '0' }).end();
}

export async function deleteBucket(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  try {
    await ctx.lilio.deleteBucket(ctx.bucket);
  } catch (err) {
    if (hasCode(err, 'NOT_EMPTY')) throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty');
    throw toS3Error(err);
  }
  ctx.res.writeHead(204).end();
}

export async function getBucketLocation(ctx: S3Context): Promise<void> {
  await ctx.lilio.getBucket(ctx.bucket);
  // us-east-1 is reported as an empty constraint, as S3 does (clients map it back).
  const region = ctx.settings.region === 'us-east-1' ? undefined : ctx.settings.region;
  sendXml(ctx.res, 200, el('LocationConstraint', region));
}

/** Versioning was never enabled on a Lilio bucket: the empty configuration says exactly that. */
export async function getBucketVersioning(ctx: S3Context): Promise<void> {
  await ctx.lilio.getBucket(ctx.bucket);
  sendXml(ctx.res, 200, el('VersioningConfiguration'));
}
