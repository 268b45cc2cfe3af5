import { randomBytes } from 'node:crypto';
import type { ChunkRef, GarbageEntry, ObjectRecord } from '../core/types.js';

/**
 * Where EtcdMetadataStore keeps things, under one prefix P ("/lilio"):
 *
 *   P/b/<bucket>                     bucket record
 *   P/e/<bucket>/<dir>/<name>        object entry: summary, small body
 *   P/e/<bucket>/<dir>/<name>/       directory entry: its id, its marker record
 *   P/x/<bucket>/<dir>/<name>        an object's body when it is too big for the entry
 *   P/p/<blob>/<n>                   page n of an immutable paged list (a long chunk list)
 *   P/q/<blob>                       a blob whose commit has not happened yet (swept when stale)
 *   P/g/c/<chunk>                    garbage: the chunk and when it was queued
 *   P/g/t/<queuedAt>/<chunk>         garbage by age (a hint; P/g/c decides)
 *   P/j/<id>                         garbage journal: queue changes too big for their commit
 *   P/s/l/<session>                  a live session (attached to its lease: gone when it expires)
 *   P/s/r/<session>/<hold>/<n>       part n of a read hold's chunk ids (attached to the lease)
 *   P/s/h                            rewritten by every read hold: garbage takes fence on it
 *   P/s/w/<session>/<chunk>          a write hold's index entry (not leased: outlives the session,
 *                                    so the reaper finds what it wrote); the hold itself is
 *                                    P/g/c/<chunk> with `heldBy`, which a commit's rescue deletes
 *   P/r/<chunk>                      repair queue: the chunk and the backends lacking a replica (etcd-repairs.ts)
 *   P/u/<upload>                     a multipart upload in progress (etcd-uploads.ts)
 *   P/v/<upload>/<part>              one of its parts, with its chunk list; part numbers zero-padded to 5 digits
 *
 * Directories have ids, as inodes do: a directory's entries live under its
 * id, so one level is one range read (objects and subdirectories sorted
 * together, since a subdirectory's name keeps its '/'), and renaming a
 * directory rewrites one entry however much lies below it. A bucket's root
 * directory is ROOT_DIR and has no entry of its own. Bucket names and ids
 * hold no '/', and keys no NUL, so every range below is unambiguous.
 */

export const ROOT_DIR = 'r';

export function newId(): string {
  return randomBytes(8).toString('hex');
}

/** The smallest key after every key starting with `prefix` (etcd's prefix range end). */
export function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export function successor(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

export interface KeyRange {
  key: Buffer;
  end: Buffer;
}

const TIME_DIGITS = 16;

export class EtcdKeys {
  readonly root: string;

  constructor(prefix: string) {
    this.root = prefix.replace(/\/+$/, '');
  }

  all(): KeyRange {
    return this.range(`${this.root}/`);
  }

  bucket(name: string): Buffer {
    return this.key(`b/${name}`);
  }

  buckets(): KeyRange {
    return this.range(`${this.root}/b/`);
  }

  /** An entry of directory `dir`: `name` is an object's last segment, or a subdirectory's with its '/'. */
  entry(bucket: string, dir: string, name: string): Buffer {
    return this.key(`e/${bucket}/${dir}/${name}`);
  }

  /** The entries of one directory whose names start with `namePrefix`. */
  entries(bucket: string, dir: string, namePrefix = ''): KeyRange {
    return this.range(`${this.root}/e/${bucket}/${dir}/${namePrefix}`);
  }

  /** The name an entry key of directory `dir` carries. */
  entryName(bucket: string, dir: string, key: Buffer): string {
    return key.subarray(Buffer.byteLength(`${this.root}/e/${bucket}/${dir}/`)).toString('utf8');
  }

  body(bucket: string, dir: string, name: string): Buffer {
    return this.key(`x/${bucket}/${dir}/${name}`);
  }

  blobPage(blob: string, page: number): Buffer {
    return this.key(`p/${blob}/${String(page).padStart(6, '0')}`);
  }

  blobPages(blob: string): KeyRange {
    return this.range(`${this.root}/p/${blob}/`);
  }

  blobPending(blob: string): Buffer {
    return this.key(`q/${blob}`);
  }

  pendingBlobs(): KeyRange {
    return this.range(`${this.root}/q/`);
  }

  garbage(chunkId: string): Buffer {
    return this.key(`g/c/${chunkId}`);
  }

  garbageQueue(): KeyRange {
    return this.range(`${this.root}/g/c/`);
  }

  garbageChunkOf(key: Buffer): string {
    return key.subarray(Buffer.byteLength(`${this.root}/g/c/`)).toString('utf8');
  }

  garbageByAge(queuedAt: number, chunkId: string): Buffer {
    return this.key(`g/t/${timeText(queuedAt)}/${chunkId}`);
  }

  /** The age index up to (not including) `before`. */
  garbageDueBefore(before: number): KeyRange {
    return { key: this.key('g/t/'), end: this.key(`g/t/${timeText(before)}`) };
  }

  /** [queuedAt, chunkId] of an age-index key. */
  parseGarbageByAge(key: Buffer): [number, string] {
    const [time, chunkId] = key
      .subarray(Buffer.byteLength(`${this.root}/g/t/`))
      .toString('utf8')
      .split('/');
    return [Number(time), chunkId ?? ''];
  }

  session(id: string): Buffer {
    return this.key(`s/l/${id}`);
  }

  sessions(): KeyRange {
    return this.range(`${this.root}/s/l/`);
  }

  readHold(session: string, hold: string, part: number): Buffer {
    return this.key(`s/r/${session}/${hold}/${part}`);
  }

  readHolds(session?: string): KeyRange {
    return this.range(`${this.root}/s/r/${session === undefined ? '' : `${session}/`}`);
  }

  readHoldsOf(session: string, hold: string): KeyRange {
    return this.range(`${this.root}/s/r/${session}/${hold}/`);
  }

  holdFence(): Buffer {
    return this.key('s/h');
  }

  writeHold(session: string, chunkId: string): Buffer {
    return this.key(`s/w/${session}/${chunkId}`);
  }

  writeHolds(session?: string): KeyRange {
    return this.range(`${this.root}/s/w/${session === undefined ? '' : `${session}/`}`);
  }

  /** [session, chunkId] of a write hold's index key. */
  parseWriteHold(key: Buffer): [string, string] {
    const [session, chunkId] = key
      .subarray(Buffer.byteLength(`${this.root}/s/w/`))
      .toString('utf8')
      .split('/');
    return [session ?? '', chunkId ?? ''];
  }

  upload(id: string): Buffer {
    return this.key(`u/${id}`);
  }

  uploads(): KeyRange {
    return this.range(`${this.root}/u/`);
  }

  part(uploadId: string, partNumber: number): Buffer {
    return this.key(`v/${uploadId}/${String(partNumber).padStart(5, '0')}`);
  }

  parts(uploadId: string): KeyRange {
    return this.range(`${this.root}/v/${uploadId}/`);
  }

  journal(id: string): Buffer {
    return this.key(`j/${id}`);
  }

  journalRange(): KeyRange {
    return this.range(`${this.root}/j/`);
  }

  private key(rest: string): Buffer {
    return Buffer.from(`${this.root}/${rest}`, 'utf8');
  }

  private range(prefix: string): KeyRange {
    const key = Buffer.from(prefix, 'utf8');
    return { key, end: rangeEnd(key) };
  }
}

/** Fixed width, so the age index sorts by time; negative times (never produced) sort as 0. */
function timeText(ms: number): string {
  return String(Math.max(0, Math.min(Math.floor(ms), 10 ** TIME_DIGITS - 1))).padStart(TIME_DIGITS, '0');
}

// ---- what the values hold ----

/** A record without what its key and its commit give it, and without its body. */
export type StoredSummary = Omit<ObjectRecord, 'bucket' | 'key' | 'version' | 'chunks' | 'inline'>;

/** A paged list (P/p/<id>/...): written before the commit that makes it reachable, never changed. */
export interface BlobRef {
  id: string;
  pages: number;
  count: number;
  /** SHA-256 of the list's JSON: a commit with the same chunks reuses the pages instead of writing them again. */
  hash: string;
}

/** The bulky half of a record: inline bytes and the chunk list, or a blob holding the list. */
export interface StoredBody {
  inline?: string;
  chunks?: ChunkRef[];
  blob?: BlobRef;
}

export interface ObjectEntry {
  s: StoredSummary;
  /** The body when it is small (or a blob reference); otherwise it is at P/x/. */
  b?: StoredBody;
  /** The commit that wrote it: a retry after a lost answer recognises its own commit by it. */
  t: string;
}

export interface DirEntry {
  id: string;
  /** The directory's marker record ("dir/"), if it has one. */
  m?: { s: StoredSummary; b: StoredBody };
  t?: string;
  /**
   * When the directory last arrived at this path (renamePrefix), which every
   * record below takes as its version if newer: true when that was this
   * entry's last write (its mod revision), else that revision. Absent: it
   * arrived when the entry was created.
   */
  mv?: true | number;
}

/** Garbage changes applied after their commit, in commit order (see etcd-garbage.ts). */
export interface JournalEntry {
  at: number;
  /** Chunks to queue, inline or in a blob. */
  retire?: GarbageEntry[];
  retireBlob?: BlobRef;
  /** Chunk lists of replaced records, queued at `at` less what `keys` reference (the entry owns the blobs). */
  lists?: BlobRef[];
  /** Take off the queue every chunk the record at [bucket, key] references when this entry is applied. */
  keys?: [string, string][];
  /** The same for every record below directory [bucket, dirId]. */
  dirs?: [string, string][];
  /** The same for the part [uploadId, partNumber] of a multipart upload. */
  parts?: [string, number][];
}

export function encode(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
