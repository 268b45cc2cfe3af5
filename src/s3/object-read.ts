import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkConditions, conditionHeaders } from './conditions.js';
import { header, refuseBody, type S3Context } from './context.js';
import { S3Error } from './errors.js';
import { objectHeaders } from './object-meta.js';

/**
 * GetObject and HeadObject. The reader is opened first and holds one
 * version: conditions, headers, range and bytes all describe that version,
 * whatever commits meanwhile.
 */

/** response-* query parameters and the header each overrides (signed requests only, as in S3). */
const OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

interface ByteRange {
  start: number;
  end: number;
}

/**
 * One `bytes=` range against `size` bytes. Like S3: a syntactically invalid
 * or multiple range is ignored (the whole object, 200); a valid one that
 * selects no byte is InvalidRange (416).
 */
export function parseRange(text: string, size: number): ByteRange | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(text.trim());
  if (!m) return undefined;
  const [, first, last] = m as unknown as [string, string, string];
  const unsatisfiable = () =>
    new S3Error('InvalidRange', 'The requested range is not satisfiable', { 'content-range': `bytes */${size}` });
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) throw unsatisfiable();
  return { start, end: last === '' ? size : Math.min(size, Number(last) + 1) };
}

export async function getObject(ctx: S3Context): Promise<void> {
  const { lilio, res, method } = ctx;
  refuseBody(ctx);
  const partNumber = ctx.query.get('partNumber');
  const rangeHeader = header(ctx, 'range');
  if (partNumber !== undefined) {
    if (!/^\d{1,5}$/.test(partNumber) || Number(partNumber) < 1 || Number(partNumber) > 10_000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    }
    if (rangeHeader !== undefined)
      throw new S3Error('InvalidRequest', 'Cannot specify both Range header and partNumber query parameter');
  }
  const overrides: Record<string, string> = {};
  for (const [param, name] of Object.entries(OVERRIDES)) {
    const value = ctx.query.get(param);
    if (value === undefined) continue;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a header value cannot hold them
    if (/[\u0000-\u001f\u007f]/.test(value) || value.length > 1024)
      throw new S3Error('InvalidArgument', `${param} is not a valid header value`);
    overrides[name] = value;
  }
  const bucket = await lilio.bucket(ctx.bucket);
  const reader = await lilio.openObject(ctx.bucket, ctx.key);
  const { record } = reader;
  const headers = { ...objectHeaders(bucket, record), ...overrides };
  try {
    checkConditions(conditionHeaders(ctx.req.headers), record, 'read');
  } catch (err) {
    if (err instanceof S3Error && err.code === 'NotModified') {
      res.writeHead(304, { etag: headers.etag!, 'last-modified': headers['last-modified']! }).end();
      return;
    }
    throw err;
  }
  let range: ByteRange | undefined;
  if (partNumber !== undefined) {
    // A completed multipart upload keeps its part sizes; any other object is one part, the whole.
    const sizes = record.partSizes ?? [record.size];
    const n = Number(partNumber);
    if (n > sizes.length) throw new S3Error('InvalidPartNumber', 'The requested partnumber is not satisfiable');
    let offset = 0;
    for (let i = 0; i < n - 1; i++) offset += sizes[i]!;
    range = { start: offset, end: offset + sizes[n - 1]! };
    headers['x-amz-mp-parts-count'] = String(sizes.length);
  } else if (rangeHeader !== undefined) {
    range = parseRange(rangeHeader, record.size);
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? record.size;
  const partial = range !== undefined && (partNumber === undefined || record.size > 0);
  const status = partial ? 206 : 200;
  const rangeHeaders =
    partial && record.size > 0 ? { 'content-range': `bytes ${start}-${end - 1}/${record.size}` } : {};
  if (method === 'HEAD') {
    res.writeHead(status, { ...headers, ...rangeHeaders, 'content-length': String(end - start) }).end();
    return;
  }
  const body = lilio.readObject(reader, range)[Symbol.asyncIterator]();
  // The first piece is read before the status line goes out: a chunk that cannot be read at all
  // is a proper error response; a failure later can only cut the connection.
  const first = await body.next();
  res.writeHead(status, { ...headers, ...rangeHeaders, 'content-length': String(end - start) });
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
