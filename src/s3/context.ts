import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Lilio } from '../engine/lilio.js';
import { decodeAwsChunked } from './chunked.js';
import { S3Error } from './errors.js';
import { BodyDigests, declaredDigests } from './payload.js';
import type { Authenticated } from './sigv4.js';
import { type XmlNode, xmlDocument } from './xml.js';

/** Settings of the S3 endpoint that handlers need. */
export interface S3Settings {
  /** Answered by GetBucketLocation and x-amz-bucket-region. */
  region: string;
  /** The largest single PUT (S3's limit is 5 GiB). */
  maxObjectSize: number;
}

/** One S3 request on its way through a handler. */
export interface S3Context {
  lilio: Lilio;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: Map<string, string>;
  bucket: string;
  key: string;
  auth: Authenticated;
  settings: S3Settings;
  /** Tells a client waiting on Expect: 100-continue to send its body (no-op otherwise). */
  sendContinue(): void;
}

export function sendXml(
  res: ServerResponse,
  status: number,
  root: XmlNode,
  headers: Record<string, string> = {},
): void {
  const body = xmlDocument(root);
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

export function header(ctx: Pick<S3Context, 'req'>, name: string): string | undefined {
  const value = ctx.req.headers[name];
  if (Array.isArray(value)) throw new S3Error('InvalidArgument', `header ${name} is given more than once`);
  return value;
}

/** The body's length as the client declared it: x-amz-decoded-content-length for aws-chunked bodies. */
export function declaredLength(ctx: S3Context): number | undefined {
  const chunked = ctx.auth.payload.kind === 'streaming';
  const text = chunked ? header(ctx, 'x-amz-decoded-content-length') : header(ctx, 'content-length');
  if (text === undefined) {
    if (chunked) throw new S3Error('MissingContentLength', 'aws-chunked bodies need x-amz-decoded-content-length');
    return undefined;
  }
  if (!/^\d{1,16}$/.test(text)) throw new S3Error('InvalidArgument', 'the content length is not a number');
  return Number(text);
}

export interface VerifiedBody {
  /** The body's bytes; it throws (and the caller aborts) when a digest, signature or length does not match. */
  stream: AsyncGenerator<Buffer>;
  /** Set once the stream has ended and every check passed. */
  result(): { md5Hex: string; bytes: number; checksumHeader?: [string, string] };
}

/**
 * The request body, decoded (aws-chunked) and checked while it streams:
 * chunk signatures, x-amz-content-sha256, Content-MD5, x-amz-checksum-*, and
 * the declared length. All of it is checked before the stream ends, so a
 * writer fed from it never commits a body that fails a check.
 */
export function verifiedBody(ctx: S3Context, length: number | undefined): VerifiedBody {
  const { auth, req } = ctx;
  const digests = new BodyDigests(auth.payload, declaredDigests(req.headers));
  let outcome: ReturnType<VerifiedBody['result']> | undefined;
  async function* stream(): AsyncGenerator<Buffer> {
    const raw = req as AsyncIterable<Buffer>;
    const source =
      auth.payload.kind === 'streaming'
        ? decodeAwsChunked(raw, {
            seed: auth.payload.signed ? auth.seed : undefined,
            trailer: auth.payload.trailer,
            onTrailer: (name, value) => digests.acceptTrailer(name, value),
          })
        : raw;
    for await (const piece of source) {
      if (length !== undefined && digests.bytes + piece.byteLength > length) {
        throw new S3Error('InvalidRequest', 'the body is longer than its declared length');
      }
      digests.update(piece);
      yield piece;
    }
    if (!req.complete || (length !== undefined && digests.bytes !== length)) {
      throw new S3Error(
        'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length HTTP header',
      );
    }
    const { md5Hex, checksumHeader } = digests.finish();
    outcome = { md5Hex, bytes: digests.bytes, checksumHeader };
  }
  return {
    stream: stream(),
    result: () => {
      if (!outcome) throw new S3Error('InternalError', 'the body was not read to its end');
      return outcome;
    },
  };
}

/** A small body read whole (XML requests): refused beyond `limit` bytes before it is buffered. */
export async function readSmallBody(ctx: S3Context, limit: number): Promise<Buffer> {
  const length = declaredLength(ctx);
  if (length !== undefined && length > limit) {
    throw new S3Error('MaxMessageLengthExceeded', `the request body may be at most ${limit} bytes`);
  }
  ctx.sendContinue();
  const body = verifiedBody(ctx, length);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const piece of body.stream) {
    total += piece.byteLength;
    if (total > limit) throw new S3Error('MaxMessageLengthExceeded', `the request body may be at most ${limit} bytes`);
    parts.push(piece);
  }
  return Buffer.concat(parts);
}

/** Refuses a body where the operation takes none (rather than reading or silently ignoring it). */
export function refuseBody(ctx: S3Context): void {
  const length = ctx.req.headers['content-length'];
  if ((length !== undefined && length !== '0') || ctx.req.headers['transfer-encoding'] !== undefined) {
    throw new S3Error('InvalidRequest', 'this operation takes no request body');
  }
}
