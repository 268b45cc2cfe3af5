import { ConflictError, InvalidError, NotFoundError } from '../core/errors.js';
import type { BucketRecord, ChunkRef, ObjectAttrs } from '../core/types.js';
import type { Expect } from './store.js';

/**
 * The rules every metadata store applies the same way, so that the memory,
 * SQLite and etcd stores cannot drift apart on what a commit means.
 */

export const DEFAULT_PAGE = 1000;
export const MAX_PAGE = 10_000;

/** Throws ConflictError unless `current` (the key's record, if any) meets `expect`. */
export function checkExpect(
  bucket: string,
  key: string,
  current: { version: number } | undefined,
  expect: Expect,
): void {
  if (expect === 'any') return;
  if (expect === 'absent') {
    if (current) throw new ConflictError(`${bucket}/${key} already exists (version ${current.version})`);
    return;
  }
  if (typeof expect !== 'object' || !Number.isSafeInteger(expect.version)) {
    throw new InvalidError(`invalid expectation for ${bucket}/${key}: ${JSON.stringify(expect)}`);
  }
  if (!current) throw new ConflictError(`${bucket}/${key} expected at version ${expect.version} but it does not exist`);
  if (current.version !== expect.version) {
    throw new ConflictError(`${bucket}/${key} expected at version ${expect.version} but is at ${current.version}`);
  }
}

/**
 * Whether two records describe the same bucket, not merely the same name. The
 * wrapped key is compared too: it is unique per creation (random key, random
 * nonce), which covers encrypted buckets created before ids existed.
 */
export function sameBucket(a: BucketRecord, b: BucketRecord): boolean {
  return a.name === b.name && a.createdAt === b.createdAt && a.id === b.id && a.wrappedKey === b.wrappedKey;
}

/**
 * The record an attributes update stores, given the current one: only attrs
 * change and the version moves on. Throws NotFoundError/ConflictError as
 * MetadataStore.updateBucket describes.
 */
export function updatedBucket(current: BucketRecord | undefined, read: BucketRecord, attrs: ObjectAttrs): BucketRecord {
  if (!current) throw new NotFoundError(`bucket ${read.name} does not exist`);
  if (!sameBucket(current, read)) {
    throw new ConflictError(`bucket ${read.name} was deleted and re-created since it was read`);
  }
  const version = current.version ?? 0;
  if (version !== (read.version ?? 0)) {
    throw new ConflictError(`bucket ${read.name} expected at version ${read.version ?? 0} but is at ${version}`);
  }
  return { ...current, attrs: { ...attrs }, version: version + 1 };
}

/** Chunks of the replaced record that the new one no longer references: they become garbage. */
export function orphanedChunks(old: readonly ChunkRef[], next: readonly ChunkRef[] = []): ChunkRef[] {
  if (old.length === 0) return [];
  if (next.length === 0) return [...old];
  const kept = new Set(next.map((c) => c.id));
  return old.filter((c) => !kept.has(c.id));
}

/** Page size of a listing: default 1,000, at most 10,000 (larger asks are cut, as S3 does). */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidError(`invalid listing limit ${limit}`);
  return Math.min(limit, MAX_PAGE);
}

export function batchLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidError(`invalid limit ${limit}`);
  return limit;
}

/** renamePrefix works on directories: both prefixes end with '/', and a directory cannot move into itself. */
/** exchangeObjects' arguments: two different keys, neither a directory marker. */
export function checkExchange(bucket: string, a: string, b: string): void {
  if (a === b || a.endsWith('/') || b.endsWith('/')) {
    throw new InvalidError(
      `cannot exchange ${bucket}/${a} and ${bucket}/${b}: two different non-directory keys are needed`,
    );
  }
}

export function checkPrefixRename(fromPrefix: string, toPrefix: string): void {
  for (const prefix of [fromPrefix, toPrefix]) {
    if (!prefix.endsWith('/') || prefix.length < 2) {
      throw new InvalidError(`renamePrefix needs directory prefixes ending with '/', got "${prefix}"`);
    }
  }
  if (toPrefix !== fromPrefix && toPrefix.startsWith(fromPrefix)) {
    throw new InvalidError(`cannot move "${fromPrefix}" into itself ("${toPrefix}")`);
  }
}

/** A session's lease length: at least a millisecond (etcd rounds it up to whole seconds). */
export function checkTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs < 1) throw new InvalidError(`invalid session ttl ${ttlMs} ms`);
}
