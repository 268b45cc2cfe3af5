import { parseSize } from '../config/size.js';
import { InvalidError } from '../core/errors.js';
import { MAX_KEY_BYTES, validateBucketName, validateKey } from '../core/names.js';
import { ApiError } from './errors.js';

/**
 * Parsing and validation of what a request carries: the target, the query,
 * the headers the API reads. Everything here throws InvalidError or ApiError
 * on bad input and never touches the engine.
 */

export type Target =
  | { route: 'root' }
  | { route: 'health' }
  | { route: 'admin'; path: string }
  | { route: 'bucket'; bucket: string }
  | { route: 'object'; bucket: string; key: string };

/** Route templates, the `route` label of the HTTP metrics. */
export const ROUTE_LABELS = {
  root: '/',
  health: '/health',
  admin: '/admin/stats',
  bucket: '/{bucket}',
  object: '/{bucket}/{key}',
  unknown: 'unknown',
} as const;

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new InvalidError(`${what}: malformed percent-encoding or invalid UTF-8`);
  }
}

/**
 * Splits a request target into path and query. The path is taken as sent:
 * no dot-segment normalisation (a URL parser would turn /b/x/../y into /b/y
 * before the key validation could refuse the "..").
 */
export function splitTarget(url: string): { path: string; query: string } {
  if (!url.startsWith('/')) throw new InvalidError('the request target must be an absolute path');
  const mark = url.indexOf('?');
  return mark < 0 ? { path: url, query: '' } : { path: url.slice(0, mark), query: url.slice(mark + 1) };
}

/** The route a path asks for, by its shape alone (metrics label it before anything is validated). */
export function routeOf(path: string): Target['route'] {
  if (path === '/') return 'root';
  if (path === '/health') return 'health';
  if (path === '/admin' || path.startsWith('/admin/')) return 'admin';
  const slash = path.indexOf('/', 1);
  return slash < 0 || slash === path.length - 1 ? 'bucket' : 'object';
}

/** /, /health, /admin/..., /{bucket}, /{bucket}/{key}; bucket and key percent-decoded and validated. */
export function parseTarget(path: string): Target {
  if (path === '/') return { route: 'root' };
  if (path === '/health') return { route: 'health' };
  if (path === '/admin' || path.startsWith('/admin/')) return { route: 'admin', path };
  if (path === '/metrics') throw new ApiError('BAD_REQUEST', 'metrics are served on the metrics port (--metrics-port)');
  const slash = path.indexOf('/', 1);
  const bucket = decode(slash < 0 ? path.slice(1) : path.slice(1, slash), 'bucket name');
  validateBucketName(bucket);
  const rawKey = slash < 0 ? '' : path.slice(slash + 1);
  if (rawKey === '') return { route: 'bucket', bucket };
  const key = decode(rawKey, 'key');
  validateKey(key);
  return { route: 'object', bucket, key };
}

/**
 * The query string as a map. Form-style '+' is a space; a parameter given
 * twice, a malformed escape, or one the route does not take is refused.
 */
export function parseQuery(query: string, allowed: readonly string[]): Map<string, string> {
  const params = new Map<string, string>();
  if (query === '') return params;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode((eq < 0 ? part : part.slice(0, eq)).replaceAll('+', ' '), 'query parameter');
    const value = eq < 0 ? '' : decode(part.slice(eq + 1).replaceAll('+', ' '), `query parameter "${name}"`);
    if (!allowed.includes(name)) {
      throw new InvalidError(
        `unknown query parameter "${name.slice(0, 40)}"${allowed.length ? ` (this route takes: ${allowed.join(', ')})` : ''}`,
      );
    }
    if (params.has(name)) throw new InvalidError(`query parameter "${name}" is given twice`);
    params.set(name, value);
  }
  return params;
}

/** The value of a header the API reads once; a repeated one is refused. */
export function singleHeader(headers: NodeJS.Dict<string | string[]>, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) throw new InvalidError(`header ${name} is given more than once`);
  return value;
}

export function parseBoolean(value: string, what: string): boolean {
  if (value === 'true' || value === '1' || value === '') return true;
  if (value === 'false' || value === '0') return false;
  throw new InvalidError(`${what}: "${value.slice(0, 40)}" is not true or false`);
}

export function parseChunkSize(value: string, what: string): number {
  const bytes = parseSize(value);
  if (bytes === undefined) throw new InvalidError(`${what}: "${value.slice(0, 40)}" is not a size`);
  return bytes;
}

/** A prefix filter for listings: any UTF-8 up to the key limit, no NUL. */
export function validatePrefix(prefix: string): string {
  if (Buffer.byteLength(prefix, 'utf8') > MAX_KEY_BYTES) throw new InvalidError('prefix is longer than a key can be');
  if (prefix.includes('\0') || !prefix.isWellFormed()) throw new InvalidError('prefix is not a valid key prefix');
  return prefix;
}

/** The continuation token of a listing: opaque to clients (base64url of where the next page starts). */
export function encodeContinuation(startAfter: string): string {
  return Buffer.from(startAfter, 'utf8').toString('base64url');
}

export function decodeContinuation(token: string): string {
  const startAfter = Buffer.from(token, 'base64url').toString('utf8');
  if (token === '' || encodeContinuation(startAfter) !== token || Buffer.byteLength(startAfter) > MAX_KEY_BYTES + 1) {
    throw new InvalidError('continuation token is not one this server handed out');
  }
  return startAfter;
}

/** Content-Type as stored with an object: type/subtype with optional parameters, printable ASCII. */
export function validateContentType(value: string): string {
  if (value.length > 256 || !/^[\w.+-]+\/[\w.+-]+(\s*;[\x20-\x7e]*)?$/.test(value)) {
    throw new InvalidError(`content-type "${value.slice(0, 60)}" is not a media type`);
  }
  return value;
}

/** A byte range of an object: start inclusive, end exclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * One `bytes=` range (RFC 9110 §14.1.2) against an object of `size` bytes, or
 * undefined when the header is to be ignored and the whole object served
 * with 200: RFC 9110 §14.2 says a server MUST ignore a range unit it does not
 * know and MAY ignore an invalid ranges-specifier (`bytes=5-3`, `bytes=abc`)
 * or several ranges, which we do not serve as multipart. Answering those
 * with 400 broke clients that send them speculatively. A valid range that
 * selects no byte (`bytes=SIZE-`, `bytes=-0`) answers 416 with
 * `Content-Range: bytes * /size`.
 */
export function parseRange(header: string, size: number): ByteRange | undefined {
  const unsatisfiable = () =>
    new ApiError('RANGE_NOT_SATISFIABLE', `range "${header.slice(0, 60)}" is outside the object (${size} bytes)`, {
      'content-range': `bytes */${size}`,
    });
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
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
