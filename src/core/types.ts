/**
 * The domain model shared by the engine, the metadata stores and the tools.
 * Records here are plain JSON-safe objects (Buffers are carried as base64
 * strings) so every metadata store can persist them unchanged.
 */

/** One chunk of an object version: immutable, placed on a replica set. */
export interface ChunkRef {
  /** Random 128-bit id, 32 lowercase hex characters. Never reused. */
  id: string;
  /** Plaintext bytes in this chunk. */
  size: number;
  /** Bytes as stored on a backend (larger than size when encrypted). */
  storedSize: number;
  /** SHA-256 (hex) of the stored bytes: what every replica must match. */
  checksum: string;
  /**
   * The replica set chosen by the ring at write time, in ring order. It names
   * every backend that should hold the chunk, including one that missed the
   * write, so under-replication is the gap between this and what backends hold.
   */
  replicas: string[];
  /**
   * Where this chunk's bytes appear in the file, for versions with
   * `layout: 'extents'`: [fileOffset, offsetInChunk, length] triples, none
   * crossing a multiple of the version's chunkSize. Absent in dense versions,
   * where chunk i holds bytes [i * chunkSize, i * chunkSize + size).
   */
  extents?: Extent[];
}

/** [fileOffset, offsetInChunk, length]: a run of a chunk's plaintext placed in a file. */
export type Extent = [number, number, number];

/**
 * Nodes that hold no data, only a type (and, for devices, a device number):
 * mkfifo, mknod, bind(2) of a unix socket on the mount. The kernel serves
 * their I/O itself; the store keeps the name and attributes.
 */
export type SpecialKind = 'fifo' | 'socket' | 'chardev' | 'blockdev';

export type EntryKind = 'file' | 'dir' | 'symlink' | SpecialKind;

export const SPECIAL_KINDS: readonly SpecialKind[] = ['fifo', 'socket', 'chardev', 'blockdev'];

/** POSIX attributes persisted with every object version. */
export interface ObjectAttrs {
  /** Permission bits only (e.g. 0o644); the file type comes from `kind`. */
  mode: number;
  uid: number;
  gid: number;
  /** Milliseconds since the epoch. */
  mtimeMs: number;
  atimeMs: number;
  ctimeMs: number;
  /** Device number (st_rdev, the kernel's encoding) of a chardev or blockdev node; absent otherwise. */
  rdev?: number;
}

/**
 * An object version as the metadata store holds it. The store assigns
 * `version` on every commit; compare-and-set is done against it.
 */
export interface ObjectRecord {
  bucket: string;
  key: string;
  kind: EntryKind;
  /** Store-assigned commit counter, strictly increasing per key. */
  version: number;
  /** Random id of this version's content; authenticated data for inline ciphertext. */
  versionId: string;
  /** Logical (plaintext) size in bytes. */
  size: number;
  /** Chunk size used when the version was written (all chunks but the last are full). */
  chunkSize: number;
  chunks: ChunkRef[];
  /**
   * 'extents': every chunk says where its bytes go (ChunkRef.extents); later
   * chunks in the list win where they overlap (a small write stored as a small
   * slice over an older chunk), and bytes no chunk covers are a hole that reads
   * as zeros and stores nothing. Absent: the dense layout, chunk i at
   * i * chunkSize, every chunk full but the last (what a streamed put writes).
   */
  layout?: 'extents';
  /** Layered versions: the bytes their chunks show (holes excluded), for st_blocks without the chunk list. */
  allocated?: number;
  /**
   * Small objects live here instead of in chunks (base64 of the stored form:
   * ciphertext for encrypted buckets). Symlink targets live here too.
   */
  inline?: string;
  attrs: ObjectAttrs;
  /** user.* extended attributes, values base64. */
  xattrs?: Record<string, string>;
  contentType?: string;
  /**
   * The S3 ETag of this version's content (lowercase hex MD5 of the body for
   * a single PUT, `md5(part md5s)-N` for a completed multipart upload), recorded by writers that computed it. It describes the
   * bytes, so it stays with the record across attribute, xattr and rename
   * commits (which keep the versionId) and is never carried into a version
   * with new content (which gets a new versionId and no etag unless its
   * writer computed one).
   */
  etag?: string;
  /**
   * A completed multipart upload's part sizes, in order: where part N lies
   * (S3 GetObject/HeadObject ?partNumber=N, x-amz-mp-parts-count).
   */
  partSizes?: number[];
  /** Commit time, milliseconds since the epoch. */
  committedAt: number;
}

/** A record before the store has assigned its version. */
export type ObjectDraft = Omit<ObjectRecord, 'version'>;

export interface BucketRecord {
  name: string;
  createdAt: number;
  /**
   * Random id given at creation: tells this bucket from one deleted and
   * re-created under the same name (createdAt can repeat within a millisecond).
   * Absent on buckets created before ids existed.
   */
  id?: string;
  /**
   * Store-assigned count of attribute updates (absent: never updated). Bucket
   * updates compare-and-set on it and on the bucket's identity.
   */
  version?: number;
  encrypted: boolean;
  /** The bucket's data key wrapped by the master key (base64), when encrypted. */
  wrappedKey?: string;
  /** Chunk size for new objects in this bucket. */
  chunkSize: number;
  /** POSIX attributes of the bucket's folder on the mount. */
  attrs: ObjectAttrs;
}

/**
 * A multipart upload in progress: parts are recorded one by one and become one
 * object at completion. Its parts' chunks are referenced by it, as a version's
 * are by the version, until it is completed, aborted or expires.
 */
export interface UploadRecord {
  /** Initiation time (hex) then random hex: sorting by id sorts one key's uploads oldest first. */
  id: string;
  bucket: string;
  /** BucketRecord.id of the bucket at creation: one deleted and re-created under the name is not this upload's. */
  bucketId?: string;
  key: string;
  /** Milliseconds since the epoch. */
  initiated: number;
  /** When a part was last recorded (or the upload created): gc aborts uploads untouched for too long. */
  touchedAt: number;
  contentType?: string;
  /** user.* extended attributes (S3 user metadata) the object gets, values base64. */
  xattrs?: Record<string, string>;
}

/** One recorded part of an upload: its chunks are cut at the bucket's chunk size from the part's first byte. */
export interface PartRecord {
  uploadId: string;
  /** 1 to 10,000. */
  partNumber: number;
  /** Plaintext bytes. */
  size: number;
  /** MD5 (hex) of the part's plaintext. */
  etag: string;
  chunkSize: number;
  chunks: ChunkRef[];
  /** Milliseconds since the epoch. */
  uploadedAt: number;
}

/** A chunk no version references any more, waiting for its grace period to pass. */
export interface GarbageEntry {
  chunk: ChunkRef;
  /** When it stopped being referenced, milliseconds since the epoch. */
  queuedAt: number;
}

export const DIR_MARKER_SUFFIX = '/';
