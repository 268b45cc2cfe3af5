import { validateKey } from '../core/names.js';
import { readSmallBody, refuseBody, type S3Context, sendXml } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { childrenNamed, childText, el, parseXml, type XmlNode, XmlSyntaxError } from './xml.js';

/**
 * DeleteObject (idempotent: a missing key is a 204, as in S3) and
 * DeleteObjects (up to 1,000 keys in a body of at most 2 MiB, deleted a few
 * at a time, each reported on its own).
 */

const MAX_BATCH_KEYS = 1000;
const MAX_BATCH_BODY = 2 * 1024 * 1024;
/** Deletes of one batch in flight at once: enough to overlap commits, not to flood the store. */
const BATCH_CONCURRENCY = 8;

export async function deleteObject(ctx: S3Context): Promise<void> {
  refuseBody(ctx);
  await ctx.lilio.deleteObject(ctx.bucket, ctx.key);
  ctx.res.writeHead(204).end();
}

function malformed(): S3Error {
  return new S3Error(
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  );
}

function parseBatch(body: Buffer): { quiet: boolean; keys: string[] } {
  let root: XmlNode;
  try {
    root = parseXml(body.toString('utf8'));
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw malformed();
    throw err;
  }
  if (root.name !== 'Delete') throw malformed();
  const objects = childrenNamed(root, 'Object');
  if (objects.length === 0 || objects.length > MAX_BATCH_KEYS) throw malformed();
  const keys = objects.map((o) => {
    const key = childText(o, 'Key');
    if (key === undefined) throw malformed();
    const version = childText(o, 'VersionId');
    if (version !== undefined && version !== 'null') {
      throw new S3Error('NotImplemented', 'deleting a given version is not supported (Lilio keeps one version)');
    }
    return key;
  });
  const quiet = (childText(root, 'Quiet') ?? 'false').trim().toLowerCase() === 'true';
  return { quiet, keys };
}

export async function deleteObjects(ctx: S3Context): Promise<void> {
  await ctx.lilio.getBucket(ctx.bucket);
  const { quiet, keys } = parseBatch(await readSmallBody(ctx, MAX_BATCH_BODY));
  const results: Array<XmlNode | undefined> = new Array(keys.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < keys.length; i = next++) {
      const key = keys[i]!;
      try {
        validateKey(key);
        await ctx.lilio.deleteObject(ctx.bucket, key);
        results[i] = quiet ? undefined : el('Deleted', el('Key', key));
      } catch (err) {
        const error = toS3Error(err, { key });
        results[i] = el('Error', el('Key', key), el('Code', error.code), el('Message', error.message));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, keys.length) }, worker));
  sendXml(ctx.res, 200, el('DeleteResult', results));
}
