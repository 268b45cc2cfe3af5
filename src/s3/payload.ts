import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { crc32 } from 'node:zlib';
import { S3Error } from './errors.js';
import type { PayloadMode } from './sigv4.js';

/**
 * The digests a request body is checked against while it streams: the MD5
 * that becomes the ETag (always), the SHA-256 the signature covers, the
 * Content-MD5 and one x-amz-checksum-* the client declared (in a header, or
 * announced in x-amz-trailer and sent after the body). `finish` runs once the
 * last byte is in and before anything is committed: a mismatch throws, the
 * writer is aborted, and no object appears.
 */

export type ChecksumAlgorithm = 'crc32' | 'crc32c' | 'crc64nvme' | 'sha1' | 'sha256';
const ALGORITHMS: readonly ChecksumAlgorithm[] = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'];

let crc32cTable: Uint32Array | undefined;
function crc32cUpdate(crc: number, data: Uint8Array): number {
  if (!crc32cTable) {
    crc32cTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = crc32cTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * CRC-64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5), what newer AWS
 * clients send by default. Kept as two 32-bit halves: BigInt per byte would
 * be an order of magnitude slower.
 */
let crc64Table: Uint32Array | undefined;
function crc64Update(state: Uint32Array, data: Uint8Array): void {
  if (!crc64Table) {
    crc64Table = new Uint32Array(512);
    for (let n = 0; n < 256; n++) {
      let lo = n;
      let hi = 0;
      for (let k = 0; k < 8; k++) {
        const carry = lo & 1;
        lo = ((lo >>> 1) | (hi << 31)) >>> 0;
        hi >>>= 1;
        if (carry) {
          lo = (lo ^ 0xac4bc9b5) >>> 0;
          hi = (hi ^ 0x9a6c9329) >>> 0;
        }
      }
      crc64Table[2 * n] = lo;
      crc64Table[2 * n + 1] = hi;
    }
  }
  let lo = state[0]!;
  let hi = state[1]!;
  for (let i = 0; i < data.length; i++) {
    const idx = ((lo ^ data[i]!) & 0xff) * 2;
    lo = (((lo >>> 8) | (hi << 24)) ^ crc64Table[idx]!) >>> 0;
    hi = ((hi >>> 8) ^ crc64Table[idx + 1]!) >>> 0;
  }
  state[0] = lo;
  state[1] = hi;
}

function crcBytes(value: number): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out.toString('base64');
}

/** One running checksum, its final value base64 as S3 headers carry it. */
class RunningChecksum {
  private crc = 0;
  /** CRC-64 state (low, high), starting at all ones. */
  private readonly crc64 = new Uint32Array([0xffffffff, 0xffffffff]);
  private readonly hash: Hash | undefined;

  constructor(readonly algorithm: ChecksumAlgorithm) {
    if (algorithm === 'sha1' || algorithm === 'sha256') this.hash = createHash(algorithm);
  }

  update(data: Uint8Array): void {
    if (this.hash) this.hash.update(data);
    else if (this.algorithm === 'crc32') this.crc = crc32(data, this.crc);
    else if (this.algorithm === 'crc64nvme') crc64Update(this.crc64, data);
    else this.crc = crc32cUpdate(this.crc, data);
  }

  digest(): string {
    if (this.hash) return this.hash.digest('base64');
    if (this.algorithm !== 'crc64nvme') return crcBytes(this.crc);
    const out = Buffer.alloc(8);
    out.writeUInt32BE(~this.crc64[1]! >>> 0, 0);
    out.writeUInt32BE(~this.crc64[0]! >>> 0, 4);
    return out.toString('base64');
  }
}

export interface DeclaredDigests {
  /** Content-MD5, base64 of 16 bytes. */
  md5?: string;
  /** The checksum named in a header (with its value) or in x-amz-trailer (value arrives after the body). */
  checksum?: { algorithm: ChecksumAlgorithm; value?: string; inTrailer: boolean };
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) throw new S3Error('InvalidArgument', `header ${name} is given more than once`);
  return value;
}

/** What the request's headers declare about its body; malformed declarations are refused before any byte is read. */
export function declaredDigests(headers: IncomingHttpHeaders): DeclaredDigests {
  const declared: DeclaredDigests = {};
  const md5 = single(headers, 'content-md5');
  if (md5 !== undefined) {
    if (!/^[A-Za-z0-9+/]{22}==$/.test(md5.trim()))
      throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.');
    declared.md5 = md5.trim();
  }
  for (const algorithm of ALGORITHMS) {
    const value = single(headers, `x-amz-checksum-${algorithm}`);
    if (value === undefined) continue;
    if (declared.checksum) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header');
    declared.checksum = { algorithm, value: value.trim(), inTrailer: false };
  }
  const trailer = single(headers, 'x-amz-trailer');
  if (trailer !== undefined) {
    const name = trailer.trim().toLowerCase();
    const algorithm = ALGORITHMS.find((a) => name === `x-amz-checksum-${a}`);
    if (!algorithm) throw new S3Error('InvalidRequest', `the trailer ${name.slice(0, 40)} is not supported`);
    if (declared.checksum) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header');
    declared.checksum = { algorithm, inTrailer: true };
  }
  for (const name of Object.keys(headers)) {
    if (
      name.startsWith('x-amz-checksum-') &&
      !ALGORITHMS.some((a) => name === `x-amz-checksum-${a}`) &&
      name !== 'x-amz-checksum-type'
    ) {
      throw new S3Error(
        'InvalidRequest',
        `${name.slice(0, 40)} is not supported (crc32, crc32c, crc64nvme, sha1, sha256 are)`,
      );
    }
  }
  return declared;
}

export class BodyDigests {
  private readonly md5 = createHash('md5');
  private readonly sha256: Hash | undefined;
  private readonly checksum: RunningChecksum | undefined;
  private trailerValue: string | undefined;
  bytes = 0;

  constructor(
    private readonly payload: PayloadMode,
    private readonly declared: DeclaredDigests,
  ) {
    if (payload.kind === 'sha256') this.sha256 = createHash('sha256');
    if (declared.checksum) this.checksum = new RunningChecksum(declared.checksum.algorithm);
  }

  update(data: Uint8Array): void {
    this.bytes += data.byteLength;
    this.md5.update(data);
    this.sha256?.update(data);
    this.checksum?.update(data);
  }

  /** A trailer that arrived after an aws-chunked body. */
  acceptTrailer(name: string, value: string): void {
    const expected = this.declared.checksum;
    if (!expected?.inTrailer || name !== `x-amz-checksum-${expected.algorithm}`) {
      throw new S3Error('InvalidRequest', `unexpected trailer ${name.slice(0, 40)}`);
    }
    this.trailerValue = value.trim();
  }

  /** Checks every declared digest; returns the MD5 hex (the ETag) and the checksum header to echo. */
  finish(): { md5Hex: string; checksumHeader?: [string, string] } {
    const md5 = this.md5.digest();
    if (this.sha256 && this.payload.kind === 'sha256' && this.sha256.digest('hex') !== this.payload.hex) {
      throw new S3Error(
        'XAmzContentSHA256Mismatch',
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
      );
    }
    if (this.declared.md5 !== undefined && md5.toString('base64') !== this.declared.md5) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    let checksumHeader: [string, string] | undefined;
    if (this.checksum && this.declared.checksum) {
      const { algorithm, inTrailer } = this.declared.checksum;
      const expected = inTrailer ? this.trailerValue : this.declared.checksum.value;
      if (expected === undefined) {
        throw new S3Error('IncompleteBody', `the trailer x-amz-checksum-${algorithm} announced was not sent`);
      }
      const actual = this.checksum.digest();
      if (actual !== expected) {
        throw new S3Error(
          'BadDigest',
          `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
        );
      }
      checksumHeader = [`x-amz-checksum-${algorithm}`, actual];
    }
    return { md5Hex: md5.toString('hex'), checksumHeader };
  }
}
