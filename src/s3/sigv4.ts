import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AccessKey, KeyRing } from './credentials.js';
import { S3Error } from './errors.js';

/**
 * AWS Signature Version 4 as S3 checks it: the Authorization header and the
 * presigned query string. Only node:crypto; every comparison of signatures
 * is constant-time; no message names a secret or the signature expected.
 * See https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
 */

export const ALGORITHM = 'AWS4-HMAC-SHA256';
/** How far a request's clock may be from ours, as S3 allows. */
export const MAX_SKEW_MS = 15 * 60_000;
/** The longest a presigned URL may live (7 days, as S3). */
const MAX_PRESIGN_SECONDS = 604_800;
export const EMPTY_SHA256 = createHash('sha256').digest('hex');

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

/** How the body is to be checked: the x-amz-content-sha256 the signature covers. */
export type PayloadMode =
  | { kind: 'unsigned' }
  | { kind: 'sha256'; hex: string }
  | { kind: 'streaming'; signed: boolean; trailer: boolean };

/** What a chunk signature chain starts from (aws-chunked bodies). */
export interface SigningSeed {
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  signature: string;
}

export interface Authenticated {
  key: AccessKey;
  payload: PayloadMode;
  seed: SigningSeed;
  presigned: boolean;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function signingKey(secret: string, date: string, region: string, service = 's3'): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export function signHex(key: Buffer, stringToSign: string): string {
  return createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
}

export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ (and "/" in paths). */
export function uriEncode(text: string, keepSlash: boolean): string {
  const encoded = encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The path's canonical form: each segment decoded and encoded again (clients differ in what they escape). */
export function normalizedPath(rawPath: string): string {
  return rawPath
    .split('/')
    .map((segment) => uriEncode(safeDecode(segment), false))
    .join('/');
}

/** The query's canonical form, without the signature itself (presigned URLs). */
export function canonicalQuery(rawQuery: string): string {
  if (rawQuery === '') return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = uriEncode(safeDecode(eq < 0 ? part : part.slice(0, eq)), false);
    if (name === 'X-Amz-Signature') continue;
    pairs.push([name, uriEncode(safeDecode(eq < 0 ? '' : part.slice(eq + 1)), false)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/** Header values by lowercase name, repeated headers joined with "," and whitespace folded. */
function headerValues(rawHeaders: string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!.trim().replace(/\s+/g, ' ');
    const previous = values.get(name);
    values.set(name, previous === undefined ? value : `${previous},${value}`);
  }
  return values;
}

export function canonicalRequest(
  method: string,
  path: string,
  query: string,
  headers: Map<string, string>,
  signedHeaders: string[],
  payloadHash: string,
): string {
  const lines = signedHeaders.map((name) => `${name}:${headers.get(name) ?? ''}\n`).join('');
  return `${method}\n${path}\n${query}\n${lines}\n${signedHeaders.join(';')}\n${payloadHash}`;
}

export function stringToSign(amzDate: string, scope: string, request: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(request)}`;
}

const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export function parseAmzDate(text: string): number | undefined {
  const m = AMZ_DATE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const ms = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
  return Number.isNaN(ms) ? undefined : ms;
}

export function formatAmzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

interface Credential {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

function parseCredential(text: string, malformed: (why: string) => S3Error): Credential {
  const parts = text.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request')
    throw malformed('the Credential is not KEY/DATE/REGION/s3/aws4_request');
  const [accessKeyId, date, region, service] = parts as [string, string, string, string];
  if (!/^\d{8}$/.test(date)) throw malformed('the Credential date is not YYYYMMDD');
  if (service !== 's3') throw malformed(`the Credential service is "${service.slice(0, 20)}", not s3`);
  return { accessKeyId, date, region, service };
}

function payloadMode(hash: string | undefined, presigned: boolean): PayloadMode {
  if (hash === undefined) {
    if (presigned) return { kind: 'unsigned' };
    throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }
  if (hash === UNSIGNED_PAYLOAD) return { kind: 'unsigned' };
  if (hash === STREAMING_SIGNED) return { kind: 'streaming', signed: true, trailer: false };
  if (hash === STREAMING_SIGNED_TRAILER) return { kind: 'streaming', signed: true, trailer: true };
  if (hash === STREAMING_UNSIGNED_TRAILER) return { kind: 'streaming', signed: false, trailer: true };
  if (/^[0-9a-f]{64}$/.test(hash)) return { kind: 'sha256', hex: hash };
  throw new S3Error(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-* or a SHA-256 hex digest',
  );
}

/**
 * Checks a request's signature (header or presigned) and returns the key it
 * was made with and how its body must be checked. Throws S3Error:
 * AccessDenied without credentials, InvalidAccessKeyId, SignatureDoesNotMatch,
 * RequestTimeTooSkewed, AccessDenied for an expired presigned URL.
 */
export function authenticate(
  req: IncomingMessage,
  rawPath: string,
  rawQuery: string,
  query: Map<string, string>,
  keys: KeyRing,
  now = Date.now(),
): Authenticated {
  const headers = headerValues(req.rawHeaders);
  const method = req.method ?? 'GET';
  const authorization = headers.get('authorization');
  const presigned = query.has('X-Amz-Algorithm') || query.has('X-Amz-Credential') || query.has('X-Amz-Signature');
  let credential: Credential;
  let signedHeaders: string[];
  let signature: string;
  let amzDate: string;
  let payloadHash: string;
  let expiresMs: number | undefined;
  if (presigned) {
    if (authorization !== undefined) throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed');
    const malformed = (why: string) => new S3Error('AuthorizationQueryParametersError', why);
    if (query.get('X-Amz-Algorithm') !== ALGORITHM) throw malformed(`X-Amz-Algorithm must be ${ALGORITHM}`);
    for (const name of ['X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature']) {
      if (!query.has(name)) throw malformed(`${name} is missing from the query string`);
    }
    if (query.has('X-Amz-Security-Token')) throw new S3Error('InvalidArgument', 'session tokens are not supported');
    credential = parseCredential(query.get('X-Amz-Credential')!, malformed);
    signedHeaders = query.get('X-Amz-SignedHeaders')!.split(';');
    signature = query.get('X-Amz-Signature')!;
    amzDate = query.get('X-Amz-Date')!;
    const expires = Number(query.get('X-Amz-Expires'));
    if (!Number.isInteger(expires) || expires < 1 || expires > MAX_PRESIGN_SECONDS) {
      throw malformed(`X-Amz-Expires must be 1 to ${MAX_PRESIGN_SECONDS} seconds`);
    }
    expiresMs = expires * 1000;
    payloadHash = headers.get('x-amz-content-sha256') ?? UNSIGNED_PAYLOAD;
  } else {
    if (authorization === undefined)
      throw new S3Error('AccessDenied', 'Anonymous access is not allowed: sign requests');
    if (authorization.startsWith('AWS ')) {
      throw new S3Error('InvalidRequest', 'Signature Version 2 is not supported: use AWS4-HMAC-SHA256');
    }
    const malformed = (why: string) => new S3Error('AuthorizationHeaderMalformed', why);
    if (!authorization.startsWith(`${ALGORITHM} `)) throw malformed(`the authorization scheme must be ${ALGORITHM}`);
    const fields = new Map<string, string>();
    for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    const cred = fields.get('Credential');
    const signed = fields.get('SignedHeaders');
    const sig = fields.get('Signature');
    if (!cred || !signed || !sig) throw malformed('Credential, SignedHeaders and Signature are all required');
    credential = parseCredential(cred, malformed);
    signedHeaders = signed.split(';');
    signature = sig;
    const date = headers.get('x-amz-date');
    if (date !== undefined) amzDate = date;
    else {
      const http = Date.parse(headers.get('date') ?? '');
      if (Number.isNaN(http))
        throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
      amzDate = formatAmzDate(http);
    }
    payloadHash = headers.get('x-amz-content-sha256') ?? '';
  }
  const payload = payloadMode(payloadHash === '' ? undefined : payloadHash, presigned);
  const requestTime = parseAmzDate(amzDate);
  if (requestTime === undefined) throw new S3Error('AccessDenied', 'X-Amz-Date is not YYYYMMDDTHHMMSSZ');
  if (!amzDate.startsWith(credential.date)) {
    throw new S3Error('SignatureDoesNotMatch', 'the Credential date does not match X-Amz-Date');
  }
  if (!signedHeaders.includes('host')) throw new S3Error('AccessDenied', 'the host header must be signed');
  if (presigned) {
    if (requestTime - now > MAX_SKEW_MS) throw new S3Error('AccessDenied', 'Request is not valid yet');
    if (now > requestTime + expiresMs!) throw new S3Error('AccessDenied', 'Request has expired');
  } else if (Math.abs(now - requestTime) > MAX_SKEW_MS) {
    throw new S3Error(
      'RequestTimeTooSkewed',
      'The difference between the request time and the current time is too large.',
    );
  }
  const key = keys.lookup(credential.accessKeyId);
  if (!key)
    throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');

  const scope = `${credential.date}/${credential.region}/${credential.service}/aws4_request`;
  const kSigning = signingKey(key.secret, credential.date, credential.region, credential.service);
  const cq = canonicalQuery(rawQuery);
  // The path as sent first (what most signers use), then its normalised form (clients escape differently).
  const paths = [rawPath, normalizedPath(rawPath)];
  const matched = paths.some((path, i) => {
    if (i > 0 && path === paths[0]) return false;
    const request = canonicalRequest(method, path, cq, headers, signedHeaders, payloadHash);
    return sameSignature(signHex(kSigning, stringToSign(amzDate, scope, request)), signature);
  });
  if (!matched) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    );
  }
  return { key, payload, presigned, seed: { signingKey: kSigning, amzDate, scope, signature } };
}
