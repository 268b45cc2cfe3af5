import { createHash } from 'node:crypto';
import { S3Error } from './errors.js';
import { EMPTY_SHA256, type SigningSeed, sameSignature, sha256Hex, signHex } from './sigv4.js';

/**
 * The aws-chunked body encoding (Content-Encoding: aws-chunked), decoded as
 * it streams: `hex-size[;chunk-signature=SIG]\r\n DATA \r\n`, repeated, then
 * a zero-size chunk and, for the *-TRAILER variants, trailer lines
 * (`x-amz-checksum-crc32:VALUE`, and `x-amz-trailer-signature:SIG` when
 * signed) and an empty line. Each chunk's signature chains on the previous
 * one, starting from the request's; a chunk's bytes are passed on as they
 * arrive and its signature is checked at its end, so a bad signature is
 * found before the last chunk, and always before the caller commits.
 * See https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 */

/** A chunk header line is short; anything longer is not this encoding. */
const MAX_LINE = 4096;
const MAX_TRAILER_LINES = 16;

class ByteReader {
  private head: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.head.length === 0) {
      if (this.ended) return false;
      const next = await this.it.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      this.head = next.value;
    }
    return true;
  }

  /** One CRLF-terminated line, without the CRLF. */
  async line(): Promise<string> {
    const parts: Buffer[] = [];
    let length = 0;
    for (;;) {
      if (!(await this.fill())) throw truncated();
      const lf = this.head.indexOf(0x0a);
      const piece = lf < 0 ? this.head : this.head.subarray(0, lf + 1);
      this.head = this.head.subarray(piece.length);
      parts.push(piece);
      length += piece.length;
      if (length > MAX_LINE) throw malformed('a chunk header line is too long');
      if (lf >= 0) break;
    }
    const text = Buffer.concat(parts).toString('latin1');
    if (!text.endsWith('\r\n')) throw malformed('a chunk line does not end with CRLF');
    return text.slice(0, -2);
  }

  /** Exactly n bytes, as the pieces they arrive in. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw truncated();
      const piece = this.head.length <= left ? this.head : this.head.subarray(0, left);
      this.head = this.head.subarray(piece.length);
      left -= piece.length;
      yield piece;
    }
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }
}

function truncated(): S3Error {
  return new S3Error(
    'IncompleteBody',
    'You did not provide the number of bytes specified by the Content-Length HTTP header',
  );
}

function malformed(why: string): S3Error {
  return new S3Error('InvalidRequest', `malformed aws-chunked body: ${why}`);
}

function badChunkSignature(): S3Error {
  return new S3Error(
    'SignatureDoesNotMatch',
    'The chunk signature we calculated does not match the signature you provided.',
  );
}

export interface ChunkedOptions {
  /** Present when chunks are signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]). */
  seed?: SigningSeed;
  /** Trailer lines follow the last chunk. */
  trailer: boolean;
  onTrailer(name: string, value: string): void;
}

export async function* decodeAwsChunked(
  source: AsyncIterable<Buffer>,
  options: ChunkedOptions,
): AsyncGenerator<Buffer> {
  const reader = new ByteReader(source);
  const seed = options.seed;
  let previous = seed?.signature ?? '';
  for (;;) {
    const header = await reader.line();
    const semicolon = header.indexOf(';');
    const sizeText = semicolon < 0 ? header : header.slice(0, semicolon);
    if (!/^[0-9a-fA-F]{1,16}$/.test(sizeText)) throw malformed('a chunk size is not hexadecimal');
    const size = Number.parseInt(sizeText, 16);
    if (!Number.isSafeInteger(size)) throw malformed('a chunk size is too large');
    let signature: string | undefined;
    if (semicolon >= 0) {
      const m = /^chunk-signature=([0-9a-f]{64})$/.exec(header.slice(semicolon + 1));
      if (!m) throw malformed('a chunk extension is not chunk-signature=SIG');
      signature = m[1];
    }
    if (seed && signature === undefined) throw malformed('a chunk has no signature');
    const hash = seed ? createHash('sha256') : undefined;
    for await (const piece of reader.take(size)) {
      hash?.update(piece);
      yield piece;
    }
    if (seed) {
      const toSign = `AWS4-HMAC-SHA256-PAYLOAD\n${seed.amzDate}\n${seed.scope}\n${previous}\n${EMPTY_SHA256}\n${hash!.digest('hex')}`;
      if (!sameSignature(signHex(seed.signingKey, toSign), signature!)) throw badChunkSignature();
      previous = signature!;
    }
    if (size === 0) break;
    if ((await reader.line()) !== '') throw malformed('chunk data is not followed by CRLF');
  }
  if (options.trailer) {
    const lines: string[] = [];
    let trailerSignature: string | undefined;
    for (let n = 0; ; n++) {
      // The final CRLF of the zero chunk may be absent on the unsigned-trailer form; an empty line ends it.
      if (n > MAX_TRAILER_LINES) throw malformed('too many trailer lines');
      if (await reader.atEnd()) break;
      const line = await reader.line();
      if (line === '') break;
      const colon = line.indexOf(':');
      if (colon <= 0) throw malformed('a trailer line is not NAME:VALUE');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'x-amz-trailer-signature') trailerSignature = value;
      else {
        lines.push(`${name}:${value}\n`);
        options.onTrailer(name, value);
      }
    }
    if (seed) {
      if (trailerSignature === undefined) throw malformed('the trailer has no signature');
      const toSign = `AWS4-HMAC-SHA256-TRAILER\n${seed.amzDate}\n${seed.scope}\n${previous}\n${sha256Hex(lines.join(''))}`;
      if (!sameSignature(signHex(seed.signingKey, toSign), trailerSignature)) throw badChunkSignature();
    }
  } else if ((await reader.line()) !== '') throw malformed('the last chunk is not followed by CRLF');
  if (!(await reader.atEnd())) throw malformed('bytes follow the last chunk');
}
