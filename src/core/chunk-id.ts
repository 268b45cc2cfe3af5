import { randomBytes } from 'node:crypto';

/**
 * 128 random bits: ids never repeat in practice, so a chunk is never
 * overwritten in place and a replica can be missing or damaged but not stale.
 */
export function newChunkId(): string {
  return randomBytes(16).toString('hex');
}

/** Same form as a chunk id; names one version's content (the AAD of inline ciphertext). */
export function newVersionId(): string {
  return randomBytes(16).toString('hex');
}
