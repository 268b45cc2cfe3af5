import type { ChunkRef, ObjectDraft, ObjectRecord } from '../core/types.js';
import { encode, type StoredBody, type StoredSummary } from './etcd-keys.js';
import type { ObjectSummary } from './store.js';

/**
 * Records in and out of their etcd form: the summary (what a listing shows)
 * and the body (inline bytes and chunk list), which sits in the entry while
 * it is small, so a listing reads one key per entry and most objects one key
 * in all, and in a key of its own otherwise.
 */

/** Bodies up to this size ride in the entry (a listing page carries them, so keep it small). */
export const ENTRY_BODY_BYTES = 1024;
/** Chunk lists longer than this go to a blob (about 1,300 chunks). */
export const KEY_BODY_BYTES = 256 * 1024;

export interface SplitRecord {
  summary: StoredSummary;
  chunks: ChunkRef[];
  inline: string | undefined;
}

export function splitRecord(record: ObjectDraft | ObjectRecord): SplitRecord {
  const { bucket: _bucket, key: _key, version: _version, chunks, inline, ...summary } = record as ObjectRecord;
  return { summary, chunks, inline };
}

export function summaryOf(bucket: string, key: string, version: number, stored: StoredSummary): ObjectSummary {
  return { bucket, key, version, ...stored };
}

export function recordOf(
  bucket: string,
  key: string,
  version: number,
  stored: StoredSummary,
  chunks: ChunkRef[],
  inline: string | undefined,
): ObjectRecord {
  const record = { bucket, key, version, ...stored, chunks } as ObjectRecord;
  if (inline !== undefined) record.inline = inline;
  return record;
}

/** A body as stored: chunks left out when there are none. */
export function bodyOf(chunks: ChunkRef[] | undefined, inline: string | undefined): StoredBody {
  const body: StoredBody = {};
  if (inline !== undefined) body.inline = inline;
  if (chunks && chunks.length > 0) body.chunks = chunks;
  return body;
}

/** Where a body goes: in the entry (returned as `inEntry`) or, encoded, in its own key. */
export function placeBody(body: StoredBody): { inEntry?: StoredBody; separate?: Buffer } {
  const encoded = encode(body);
  return encoded.length <= ENTRY_BODY_BYTES ? { inEntry: body } : { separate: encoded };
}
