import type { BucketRecord, EntryKind, ObjectRecord } from '../core/types.js';
import type { ObjectSummary } from '../meta/store.js';

/**
 * The JSON bodies of the HTTP API, shared by the server that writes them and
 * the client that reads them. Wrapped keys and chunk bytes never appear here.
 */

export interface BucketSummary {
  name: string;
  encrypted: boolean;
  chunkSize: number;
  created: string;
}

export interface ListedObject {
  key: string;
  kind: EntryKind;
  size: number;
  /** The version id; also the object's ETag. */
  etag: string;
  /** Modification time, ISO 8601, and the same in milliseconds. */
  lastModified: string;
  mtimeMs: number;
  mode: number;
  contentType?: string;
}

export interface ObjectListing {
  bucket: string;
  prefix: string;
  delimiter: string;
  objects: ListedObject[];
  prefixes: string[];
  /** Set when more entries follow: pass it back as ?continuation= for the next page. */
  continuation?: string;
}

export interface PutResult {
  bucket: string;
  key: string;
  size: number;
  etag: string;
  version: number;
  chunks: number;
}

export function bucketSummary(record: BucketRecord): BucketSummary {
  return {
    name: record.name,
    encrypted: record.encrypted,
    chunkSize: record.chunkSize,
    created: new Date(record.createdAt).toISOString(),
  };
}

export function listedObject(object: ObjectSummary): ListedObject {
  const listed: ListedObject = {
    key: object.key,
    kind: object.kind,
    size: object.size,
    etag: object.versionId,
    lastModified: new Date(object.attrs.mtimeMs).toISOString(),
    mtimeMs: object.attrs.mtimeMs,
    mode: object.attrs.mode,
  };
  if (object.contentType) listed.contentType = object.contentType;
  return listed;
}

export function putResult(record: ObjectRecord): PutResult {
  return {
    bucket: record.bucket,
    key: record.key,
    size: record.size,
    etag: record.versionId,
    version: record.version,
    chunks: record.chunks.length,
  };
}
