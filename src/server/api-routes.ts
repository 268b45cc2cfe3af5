import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidError, NotFoundError } from '../core/errors.js';
import type { ObjectRecord } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';
import { bucketInfo, collectStatus } from '../engine/status.js';
import { bucketSummary, listedObject, type ObjectListing, putResult } from './api-types.js';
import { ApiError } from './errors.js';
import {
  type ByteRange,
  decodeContinuation,
  encodeContinuation,
  parseBoolean,
  parseChunkSize,
  parseQuery,
  parseRange,
  singleHeader,
  validateContentType,
  validatePrefix,
} from './request.js';

/** One request on its way through a route. */
export interface RouteContext {
  lilio: Lilio;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: string;
  /** The client sent Expect: 100-continue and waits for our go-ahead before the body. */
  expectContinue: boolean;
  /** Facts for a long-running server's /admin/stats. */
  serverFacts(): Record<string, unknown>;
}

const LIST_LIMIT = 1000;

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function methodNotAllowed(method: string, allowed: string[]): ApiError {
  return new ApiError(
    'METHOD_NOT_ALLOWED',
    `${method.slice(0, 20)} is not allowed here (allowed: ${allowed.join(', ')})`,
    {
      allow: allowed.join(', '),
    },
  );
}

/** Refuses a body on a request that takes none, rather than reading (or silently ignoring) it. */
export function refuseBody(req: IncomingMessage): void {
  const length = req.headers['content-length'];
  if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
    throw new ApiError('BAD_REQUEST', 'this request takes no body', { connection: 'close' });
  }
}

// ---- / and /admin ----

export async function rootRoute(ctx: RouteContext): Promise<void> {
  if (ctx.method !== 'GET') throw methodNotAllowed(ctx.method, ['GET']);
  parseQuery(ctx.query, []);
  const buckets = await ctx.lilio.listBuckets();
  sendJson(ctx.res, 200, { buckets: buckets.map(bucketSummary) });
}

export async function adminRoute(ctx: RouteContext, path: string): Promise<void> {
  if (path !== '/admin/stats') throw new NotFoundError(`no admin resource ${path.slice(0, 60)} (try /admin/stats)`);
  if (ctx.method !== 'GET') throw methodNotAllowed(ctx.method, ['GET']);
  parseQuery(ctx.query, []);
  const status = await collectStatus(ctx.lilio, { repairQueue: true });
  sendJson(ctx.res, 200, { ...status, server: ctx.serverFacts() });
}

// ---- /{bucket} ----

export async function bucketRoute(ctx: RouteContext, bucket: string): Promise<void> {
  const { lilio, req, res } = ctx;
  switch (ctx.method) {
    case 'GET': {
      const query = parseQuery(ctx.query, ['prefix', 'delimiter', 'continuation', 'limit', 'info']);
      if (query.has('info')) {
        if (query.size > 1) throw new InvalidError('?info takes no other parameter');
        sendJson(res, 200, await bucketInfo(lilio, bucket));
        return;
      }
      sendJson(res, 200, await listObjects(lilio, bucket, query));
      return;
    }
    case 'HEAD': {
      parseQuery(ctx.query, []);
      const record = await lilio.getBucket(bucket);
      res.writeHead(200, {
        'x-lilio-encrypted': String(record.encrypted),
        'x-lilio-chunk-size': String(record.chunkSize),
      });
      res.end();
      return;
    }
    case 'PUT': {
      refuseBody(req);
      const query = parseQuery(ctx.query, ['encrypt', 'chunkSize']);
      const encrypt = pick(query.get('encrypt'), singleHeader(req.headers, 'x-lilio-encrypt'), 'encrypt');
      const chunkSize = pick(query.get('chunkSize'), singleHeader(req.headers, 'x-lilio-chunk-size'), 'chunk size');
      const record = await lilio.createBucket(bucket, {
        encrypt: encrypt === undefined ? false : parseBoolean(encrypt, 'encrypt'),
        chunkSize: chunkSize === undefined ? undefined : parseChunkSize(chunkSize, 'chunk size'),
      });
      sendJson(res, 201, bucketSummary(record), { location: `/${bucket}` });
      return;
    }
    case 'DELETE':
      refuseBody(req);
      parseQuery(ctx.query, []);
      await lilio.deleteBucket(bucket);
      res.writeHead(204).end();
      return;
    default:
      throw methodNotAllowed(ctx.method, ['GET', 'HEAD', 'PUT', 'DELETE']);
  }
}

/** A setting given as a query parameter or a header; both is fine only when they agree. */
function pick(fromQuery: string | undefined, fromHeader: string | undefined, what: string): string | undefined {
  if (fromQuery !== undefined && fromHeader !== undefined && fromQuery !== fromHeader) {
    throw new InvalidError(`${what} is given both as a query parameter and a header, with different values`);
  }
  return fromQuery ?? fromHeader;
}

async function listObjects(lilio: Lilio, bucket: string, query: Map<string, string>): Promise<ObjectListing> {
  const prefix = validatePrefix(query.get('prefix') ?? '');
  const delimiter = query.get('delimiter') ?? '';
  if (delimiter !== '' && delimiter !== '/') throw new InvalidError('delimiter must be "/" (or absent)');
  const limitText = query.get('limit');
  const limit = limitText === undefined ? LIST_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT) {
    throw new InvalidError(`limit must be an integer from 1 to ${LIST_LIMIT}`);
  }
  const continuation = query.get('continuation');
  const page = await lilio.list(bucket, {
    prefix,
    delimiter: delimiter === '/' ? '/' : undefined,
    startAfter: continuation ? decodeContinuation(continuation) : undefined,
    limit,
  });
  const listing: ObjectListing = {
    bucket,
    prefix,
    delimiter,
    objects: page.objects.map(listedObject),
    prefixes: page.prefixes,
  };
  if (page.next !== undefined) listing.continuation = encodeContinuation(page.next);
  return listing;
}

// ---- /{bucket}/{key} ----

export async function objectRoute(ctx: RouteContext, bucket: string, key: string): Promise<void> {
  switch (ctx.method) {
    case 'PUT':
      return putObject(ctx, bucket, key);
    case 'GET':
    case 'HEAD':
      return getObject(ctx, bucket, key);
    case 'DELETE': {
      refuseBody(ctx.req);
      parseQuery(ctx.query, []);
      const removed = await ctx.lilio.deleteObject(bucket, key);
      if (!removed) throw new NotFoundError(`object "${bucket}/${key}" does not exist`);
      ctx.res.writeHead(204).end();
      return;
    }
    default:
      throw methodNotAllowed(ctx.method, ['GET', 'HEAD', 'PUT', 'DELETE']);
  }
}

/**
 * Yields the request body and, at its end, makes sure all of it arrived. A
 * client that disconnects mid-body must not commit a truncated object: the
 * error makes putObject abort the writer, so the previous version stays.
 */
async function* requestBody(req: IncomingMessage, declared: number | undefined): AsyncGenerator<Buffer> {
  let received = 0;
  for await (const piece of req as AsyncIterable<Buffer>) {
    received += piece.byteLength;
    yield piece;
  }
  if (!req.complete || (declared !== undefined && received !== declared)) {
    throw new ApiError('BAD_REQUEST', `the request body ended after ${received} bytes`);
  }
}

async function putObject(ctx: RouteContext, bucket: string, key: string): Promise<void> {
  const { req, res, lilio } = ctx;
  parseQuery(ctx.query, []);
  const lengthHeader = req.headers['content-length'];
  const declared = lengthHeader === undefined ? undefined : Number(lengthHeader);
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) {
    throw new ApiError('LENGTH_REQUIRED', 'PUT needs a Content-Length or a chunked body');
  }
  const typeHeader = singleHeader(req.headers, 'content-type');
  const contentType = typeHeader === undefined ? undefined : validateContentType(typeHeader);
  const isMarker = key.endsWith('/');
  if (isMarker && declared !== 0) {
    throw new InvalidError(`"${key}" ends with "/": a directory marker, which takes an empty body`);
  }
  // Names are valid and the bucket exists before the client is told to send the body.
  await lilio.getBucket(bucket);
  if (ctx.expectContinue) res.writeContinue();
  const record = await lilio.putObject(bucket, key, requestBody(req, declared), {
    contentType,
    kind: isMarker ? 'dir' : 'file',
  });
  sendJson(res, 200, putResult(record), { etag: `"${record.versionId}"` });
}

function objectHeaders(record: ObjectRecord): Record<string, string> {
  return {
    'content-type': record.contentType ?? 'application/octet-stream',
    etag: `"${record.versionId}"`,
    'last-modified': new Date(record.attrs.mtimeMs).toUTCString(),
    'accept-ranges': 'bytes',
    'x-lilio-version': String(record.version),
    'x-lilio-kind': record.kind,
  };
}

async function getObject(ctx: RouteContext, bucket: string, key: string): Promise<void> {
  const { req, res, lilio } = ctx;
  const query = parseQuery(ctx.query, ctx.method === 'GET' ? ['stat'] : []);
  if (query.has('stat')) {
    sendJson(res, 200, await lilio.statObject(bucket, key));
    return;
  }
  const rangeHeader = ctx.method === 'GET' ? singleHeader(req.headers, 'range') : undefined;
  // The reader holds one version: headers, range and bytes all describe it, whatever commits meanwhile.
  const reader = await lilio.openObject(bucket, key);
  const { record } = reader;
  const headers = objectHeaders(record);
  if (ctx.method === 'HEAD') {
    res.writeHead(200, { ...headers, 'content-length': String(record.size) }).end();
    return;
  }
  let range: ByteRange | undefined;
  if (rangeHeader !== undefined) range = parseRange(rangeHeader, record.size);
  const start = range?.start ?? 0;
  const end = range?.end ?? record.size;
  const body = lilio.readObject(reader, range)[Symbol.asyncIterator]();
  // The first piece is read before the status line goes out, so a chunk that cannot be read
  // at all is a proper error response; a failure later can only cut the connection.
  const first = await body.next();
  res.writeHead(range ? 206 : 200, {
    ...headers,
    'content-length': String(end - start),
    ...(range ? { 'content-range': `bytes ${start}-${end - 1}/${record.size}` } : {}),
  });
  if (first.done) {
    res.end();
    return;
  }
  async function* rest(): AsyncGenerator<Buffer> {
    yield first.value as Buffer;
    for (let next = await body.next(); !next.done; next = await body.next()) yield next.value;
  }
  try {
    await pipeline(Readable.from(rest(), { objectMode: false }), res);
  } finally {
    await body.return?.(undefined);
  }
}
