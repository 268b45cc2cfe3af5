import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { ExistsError, InvalidError, LilioError, UnsupportedError } from '../core/errors.js';
import { validateBucketName, validateKey } from '../core/names.js';
import type { BucketRecord, GarbageEntry, ObjectDraft, ObjectRecord, PartRecord, UploadRecord } from '../core/types.js';
import type { MetadataStore } from './store.js';

/**
 * Metadata as JSON lines, the original design's JSON view of it, for any
 * store type: backups, inspection, and moving between stores
 * (`lilio meta dump` / `lilio meta load`).
 *
 *   {"kind":"header","format":1,"store":"local","dumpedAt":1732500000000}
 *   {"kind":"bucket","bucket":{...BucketRecord}}
 *   {"kind":"object","object":{...ObjectRecord, chunks and inline included}}
 *   {"kind":"upload","upload":{...UploadRecord}}       a multipart upload in progress
 *   {"kind":"part","part":{...PartRecord}}             one of its parts, after it
 *   {"kind":"garbage","chunk":{...ChunkRef},"queuedAt":1732500000000}
 *
 * Records are nested rather than spread next to "kind" because objects have a
 * `kind` of their own. A bucket's line comes before its objects and uploads,
 * an upload's before its parts (uploads own their parts' chunks: a dump
 * without them would leave those chunks to the orphan scan).
 *
 * A dump is not a snapshot of the whole store: each record is whole, but one
 * taken while others commit may mix earlier and later states of different keys.
 *
 * Versions are the loading store's to assign, so a load gives every object a
 * new one: a client still holding a version from before fails its
 * compare-and-set, as it should.
 */

export const DUMP_FORMAT = 1;

export interface MetadataCounts {
  buckets: number;
  objects: number;
  /** Multipart uploads in progress, and their parts. */
  uploads: number;
  parts: number;
  garbage: number;
}

const GARBAGE_PAGE = 1000;

export async function dumpMetadata(
  store: MetadataStore,
  out: (line: string) => void | Promise<void>,
): Promise<MetadataCounts> {
  const counts: MetadataCounts = { buckets: 0, objects: 0, uploads: 0, parts: 0, garbage: 0 };
  await out(JSON.stringify({ kind: 'header', format: DUMP_FORMAT, store: store.type, dumpedAt: Date.now() }));
  for (const bucket of await store.listBuckets()) {
    await out(JSON.stringify({ kind: 'bucket', bucket }));
    counts.buckets++;
    for await (const object of store.iterateObjects(bucket.name)) {
      await out(JSON.stringify({ kind: 'object', object }));
      counts.objects++;
    }
    await dumpUploads(store, bucket.name, out, counts);
  }
  // Without a read-only view of the queue the dump leaves it out: taking and re-queuing
  // would lose entries if the dump died in between. Chunks left out are orphans for gc.
  if (store.peekGarbage) {
    for (let page = await store.peekGarbage(undefined, GARBAGE_PAGE); page.length > 0; ) {
      for (const { chunk, queuedAt } of page) await out(JSON.stringify({ kind: 'garbage', chunk, queuedAt }));
      counts.garbage += page.length;
      page = await store.peekGarbage(page[page.length - 1]!.chunk.id, GARBAGE_PAGE);
    }
  }
  return counts;
}

async function dumpUploads(
  store: MetadataStore,
  bucket: string,
  out: (line: string) => void | Promise<void>,
  counts: MetadataCounts,
): Promise<void> {
  let after: { key: string; id: string } | undefined;
  for (;;) {
    const page = await store.listUploads(bucket, { ...(after ? { after } : {}), limit: 1000 });
    for (const upload of page.uploads) {
      await out(JSON.stringify({ kind: 'upload', upload }));
      counts.uploads++;
      for (let partAfter = 0; ; ) {
        // Gone since it was listed (completed, aborted): what was written of it stays consistent.
        const parts = await store.listParts(upload.id, { after: partAfter, limit: 100 }).catch((err: unknown) => {
          if (err instanceof LilioError && err.code === 'NO_SUCH_UPLOAD') return { parts: [], truncated: false };
          throw err;
        });
        for (const part of parts.parts) await out(JSON.stringify({ kind: 'part', part }));
        counts.parts += parts.parts.length;
        if (!parts.truncated || parts.parts.length === 0) break;
        partAfter = parts.parts.at(-1)!.partNumber;
      }
    }
    const last = page.uploads.at(-1);
    if (!page.truncated || !last) return;
    after = { key: last.key, id: last.id };
  }
}

const attrs = z.looseObject({
  mode: z.number(),
  uid: z.number(),
  gid: z.number(),
  mtimeMs: z.number(),
  atimeMs: z.number(),
  ctimeMs: z.number(),
  rdev: z.number().optional(),
});

const chunk = z.looseObject({
  id: z.string(),
  size: z.number(),
  storedSize: z.number(),
  checksum: z.string(),
  replicas: z.array(z.string()),
  extents: z.array(z.tuple([z.number(), z.number(), z.number()])).optional(),
});

const bucket = z.looseObject({
  name: z.string(),
  createdAt: z.number(),
  encrypted: z.boolean(),
  wrappedKey: z.string().optional(),
  chunkSize: z.number(),
  attrs,
});

const object = z.looseObject({
  bucket: z.string(),
  key: z.string(),
  kind: z.enum(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']),
  version: z.number().optional(),
  versionId: z.string(),
  size: z.number(),
  chunkSize: z.number(),
  chunks: z.array(chunk),
  layout: z.literal('extents').optional(),
  allocated: z.number().optional(),
  inline: z.string().optional(),
  attrs,
  xattrs: z.record(z.string(), z.string()).optional(),
  contentType: z.string().optional(),
  etag: z.string().optional(),
  partSizes: z.array(z.number()).optional(),
  committedAt: z.number(),
});

const upload = z.looseObject({
  id: z.string().regex(/^[0-9a-f]{36}$/),
  bucket: z.string(),
  key: z.string(),
  initiated: z.number(),
  touchedAt: z.number(),
  contentType: z.string().optional(),
  xattrs: z.record(z.string(), z.string()).optional(),
});

const part = z.looseObject({
  uploadId: z.string(),
  partNumber: z.number(),
  size: z.number(),
  etag: z.string(),
  chunkSize: z.number(),
  chunks: z.array(chunk),
  uploadedAt: z.number(),
});

const dumpLine = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('header'), format: z.number() }),
  z.object({ kind: z.literal('bucket'), bucket }),
  z.object({ kind: z.literal('object'), object }),
  z.object({ kind: z.literal('upload'), upload }),
  z.object({ kind: z.literal('part'), part }),
  z.object({ kind: z.literal('garbage'), chunk, queuedAt: z.number() }),
]);

/**
 * Recreates what `dumpMetadata` wrote. Buckets are created (one that already
 * exists with the same record is accepted, so a load can be resumed); objects
 * are committed with expect 'any' and get new versions; garbage is queued.
 * Names are validated as at any entry point. An error names the line.
 */
export async function loadMetadata(
  store: MetadataStore,
  lines: AsyncIterable<string> | Iterable<string>,
): Promise<MetadataCounts> {
  const counts: MetadataCounts = { buckets: 0, objects: 0, uploads: 0, parts: 0, garbage: 0 };
  let garbage: GarbageEntry[] = [];
  let lineNumber = 0;
  for await (const text of lines) {
    lineNumber++;
    if (text.trim() === '') continue;
    try {
      const line = parseLine(text);
      switch (line.kind) {
        case 'header':
          if (line.format !== DUMP_FORMAT)
            throw new UnsupportedError(`dump format ${line.format} is not ${DUMP_FORMAT}`);
          break;
        case 'bucket':
          await createBucket(store, line.bucket as BucketRecord);
          counts.buckets++;
          break;
        case 'object': {
          const { version: _assignedByStore, ...draft } = line.object as ObjectRecord;
          validateBucketName(draft.bucket);
          validateKey(draft.key);
          await store.putObject(draft as ObjectDraft, 'any');
          counts.objects++;
          break;
        }
        case 'upload': {
          const record = line.upload as UploadRecord;
          validateBucketName(record.bucket);
          validateKey(record.key);
          await createUpload(store, record);
          counts.uploads++;
          break;
        }
        case 'part':
          await store.putPart(line.part as PartRecord);
          counts.parts++;
          break;
        case 'garbage':
          garbage.push({ chunk: line.chunk as GarbageEntry['chunk'], queuedAt: line.queuedAt });
          if (garbage.length >= GARBAGE_PAGE) {
            await store.queueGarbage(garbage);
            counts.garbage += garbage.length;
            garbage = [];
          }
          break;
      }
    } catch (err) {
      throw atLine(lineNumber, err);
    }
  }
  if (garbage.length > 0) await store.queueGarbage(garbage);
  counts.garbage += garbage.length;
  return counts;
}

function parseLine(text: string): z.infer<typeof dumpLine> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidError(`not JSON (${(err as Error).message})`);
  }
  const parsed = dumpLine.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidError(`not a dump line: ${issue?.path.join('.') || 'line'}: ${issue?.message}`);
  }
  return parsed.data;
}

async function createBucket(store: MetadataStore, record: BucketRecord): Promise<void> {
  validateBucketName(record.name);
  try {
    await store.createBucket(record);
  } catch (err) {
    if (!(err instanceof ExistsError)) throw err;
    // A different record would bring a different data key: objects encrypted under either would be lost.
    if (!isDeepStrictEqual(await store.getBucket(record.name), record)) {
      throw new ExistsError(`bucket ${record.name} already exists with different settings`);
    }
  }
}

/** An upload already there with the same id (a resumed load) is accepted if it is the same upload. */
async function createUpload(store: MetadataStore, record: UploadRecord): Promise<void> {
  try {
    await store.createUpload(record);
  } catch (err) {
    if (!(err instanceof ExistsError)) throw err;
    const held = await store.getUpload(record.id);
    if (held?.bucket !== record.bucket || held.key !== record.key || held.initiated !== record.initiated) {
      throw new ExistsError(`upload ${record.id} already exists for another object`);
    }
  }
}

function atLine(lineNumber: number, err: unknown): LilioError {
  if (err instanceof LilioError) return new LilioError(err.code, `line ${lineNumber}: ${err.message}`, { cause: err });
  return new InvalidError(`line ${lineNumber}: ${err instanceof Error ? err.message : String(err)}`);
}
