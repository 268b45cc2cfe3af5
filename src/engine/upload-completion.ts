import { createHash } from 'node:crypto';
import { EntityTooSmallError, InvalidError, InvalidPartError, InvalidPartOrderError } from '../core/errors.js';
import { extentsAt } from '../core/extents.js';
import type { ChunkRef, PartRecord } from '../core/types.js';

/**
 * What CompleteMultipartUpload decides before its commit: whether the part
 * list is acceptable (S3's rules and error codes), and the layered chunk list
 * and ETag of the object it makes. Pure: uploads.ts reads and commits.
 */

/** S3's multipart ETag: MD5 of the concatenated binary part MD5s, then "-" and the number of parts. */
export function multipartEtag(partMd5s: readonly string[]): string {
  const md5 = createHash('md5');
  for (const hex of partMd5s) md5.update(Buffer.from(hex, 'hex'));
  return `${md5.digest('hex')}-${partMd5s.length}`;
}

/** An ETag as clients send it back: quotes and case do not matter. */
export function normalEtag(etag: string): string {
  return etag.trim().replace(/^"|"$/g, '').toLowerCase();
}

/** At least one part, in strictly ascending order (a part listed twice is out of order too). */
export function checkPartOrder(parts: ReadonlyArray<{ partNumber: number }>): void {
  if (parts.length === 0) throw new InvalidError('a multipart upload is completed with at least one part');
  for (let i = 1; i < parts.length; i++) {
    if (parts[i]!.partNumber <= parts[i - 1]!.partNumber) {
      throw new InvalidPartOrderError(`part ${parts[i]!.partNumber} is listed after part ${parts[i - 1]!.partNumber}`);
    }
  }
}

/**
 * The recorded parts the list names: each must exist with the ETag given
 * (InvalidPart), and every one but the last hold `minPartSize` bytes (EntityTooSmall).
 */
export function chooseParts(
  listed: ReadonlyArray<{ partNumber: number; etag: string }>,
  recorded: ReadonlyMap<number, PartRecord>,
  minPartSize: number,
): PartRecord[] {
  return listed.map(({ partNumber, etag }, i) => {
    const part = recorded.get(partNumber);
    if (!part || part.etag !== normalEtag(etag)) {
      throw new InvalidPartError(
        part ? `part ${partNumber} has ETag "${part.etag}", not ${etag}` : `part ${partNumber} was never uploaded`,
      );
    }
    if (i < listed.length - 1 && part.size < minPartSize) {
      throw new EntityTooSmallError(
        `part ${partNumber} holds ${part.size} bytes: every part but the last needs ${minPartSize}`,
      );
    }
    return part;
  });
}

/**
 * The parts' own chunks, each placed at its part's offset in the object and
 * cut at multiples of `chunkSize` (the layered layout's windows): no byte moves.
 */
export function placeParts(parts: readonly PartRecord[], chunkSize: number): { chunks: ChunkRef[]; size: number } {
  const chunks: ChunkRef[] = [];
  let size = 0;
  for (const part of parts) {
    let inPart = 0;
    for (const chunk of part.chunks) {
      chunks.push({ ...chunk, extents: extentsAt(size + inPart, chunk.size, chunkSize) });
      inPart += chunk.size;
    }
    size += part.size;
  }
  return { chunks, size };
}
