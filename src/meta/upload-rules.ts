import { InvalidError, InvalidPartError } from '../core/errors.js';
import type { ChunkRef, ObjectDraft, PartRecord, UploadRecord } from '../core/types.js';
import { compareKeys } from './keyspace.js';
import type { UploadListOptions } from './store.js';

/**
 * The rules of multipart uploads every metadata store applies the same way
 * (see MetadataStore.createUpload and friends).
 */

export const MAX_PART_NUMBER = 10_000;

export function checkPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new InvalidError(`part number ${partNumber} is not between 1 and ${MAX_PART_NUMBER}`);
  }
}

/** Uploads in listing order: key (byte order), then id (initiation time). */
export function compareUploads(a: Pick<UploadRecord, 'key' | 'id'>, b: Pick<UploadRecord, 'key' | 'id'>): number {
  return compareKeys(a.key, b.key) || compareKeys(a.id, b.id);
}

/** Whether an upload belongs in a listing with these options (prefix, and after the resume point). */
export function uploadListed(upload: UploadRecord, options: UploadListOptions): boolean {
  if (options.prefix && !upload.key.startsWith(options.prefix)) return false;
  const after = options.after;
  if (!after) return true;
  const byKey = compareKeys(upload.key, after.key);
  if (byKey !== 0) return byKey > 0;
  return after.id !== undefined && compareKeys(upload.id, after.id) > 0;
}

/**
 * Checks a completion's draft against the upload and the chunks its parts
 * hold now; returns the parts' chunks the draft leaves out (garbage once the
 * completion commits).
 */
export function completionGarbage(
  upload: UploadRecord,
  draft: ObjectDraft,
  parts: ReadonlyArray<Pick<PartRecord, 'chunks'>>,
): ChunkRef[] {
  if (draft.bucket !== upload.bucket || draft.key !== upload.key) {
    throw new InvalidError(
      `upload ${upload.id} is for ${upload.bucket}/${upload.key}, not ${draft.bucket}/${draft.key}`,
    );
  }
  const owned = new Map<string, ChunkRef>();
  for (const part of parts) for (const chunk of part.chunks) owned.set(chunk.id, chunk);
  for (const chunk of draft.chunks) {
    // A chunk of a part replaced since the caller read the parts is garbage already.
    if (!owned.delete(chunk.id)) {
      throw new InvalidPartError(`upload ${upload.id}: a part changed while the upload was being completed`);
    }
  }
  return [...owned.values()];
}
