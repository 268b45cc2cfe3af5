import { S3Error } from './errors.js';

/**
 * Where a request points: the bucket and key, from the path (path-style,
 * /bucket/key) or from the Host header (virtual-host style,
 * bucket.DOMAIN/key, when the server knows its DOMAIN), and its query. The
 * path is taken as sent, without dot-segment normalisation: a key with ".."
 * must reach the name rules to be refused, not be silently rewritten.
 */

export interface S3Target {
  rawPath: string;
  rawQuery: string;
  query: Map<string, string>;
  bucket?: string;
  key?: string;
  virtualHost: boolean;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3Error('InvalidArgument', `${what}: malformed percent-encoding or invalid UTF-8`);
  }
}

/** S3 query parameters: form-style ('+' is a space), first occurrence wins, names kept as sent. */
export function parseS3Query(rawQuery: string): Map<string, string> {
  const params = new Map<string, string>();
  if (rawQuery === '') return params;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode((eq < 0 ? part : part.slice(0, eq)).replaceAll('+', ' '), 'query parameter');
    const value = eq < 0 ? '' : decode(part.slice(eq + 1).replaceAll('+', ' '), `query parameter ${name.slice(0, 40)}`);
    if (!params.has(name)) params.set(name, value);
  }
  return params;
}

/** The host name without port, lowercase; [v6] addresses kept bracketed. */
function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

export function parseTarget(url: string, host: string | undefined, domain: string | undefined): S3Target {
  if (!url.startsWith('/')) throw new S3Error('InvalidRequest', 'the request target must be an absolute path');
  const mark = url.indexOf('?');
  const rawPath = mark < 0 ? url : url.slice(0, mark);
  const rawQuery = mark < 0 ? '' : url.slice(mark + 1);
  const query = parseS3Query(rawQuery);
  const name = host === undefined ? '' : hostName(host);
  if (domain !== undefined && name !== domain && name.endsWith(`.${domain}`)) {
    const bucket = name.slice(0, -(domain.length + 1));
    const key = rawPath.length > 1 ? decode(rawPath.slice(1), 'key') : undefined;
    return { rawPath, rawQuery, query, bucket, key, virtualHost: true };
  }
  if (rawPath === '/') return { rawPath, rawQuery, query, virtualHost: false };
  const slash = rawPath.indexOf('/', 1);
  const bucket = decode(slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash), 'bucket name');
  const rawKey = slash < 0 ? '' : rawPath.slice(slash + 1);
  return {
    rawPath,
    rawQuery,
    query,
    bucket,
    key: rawKey === '' ? undefined : decode(rawKey, 'key'),
    virtualHost: false,
  };
}
