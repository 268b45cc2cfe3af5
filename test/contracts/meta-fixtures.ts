import { randomBytes } from 'node:crypto';
import type { BucketRecord, ChunkRef, ObjectDraft, ObjectRecord } from '../../src/core/types.js';
import type { ListOptions, MetadataStore, ObjectSummary } from '../../src/meta/store.js';

/** Records and helpers shared by the metadata contract and the store-specific tests. */

export const FUTURE = () => Date.now() + 60_000;

export function chunkRef(size = 4096): ChunkRef {
  return {
    id: randomBytes(16).toString('hex'),
    size,
    storedSize: size + 28,
    checksum: randomBytes(32).toString('hex'),
    replicas: ['disk-a', 'disk-b'],
  };
}

export function bucketRecord(name: string): BucketRecord {
  const now = Date.now();
  return {
    name,
    createdAt: now,
    encrypted: true,
    wrappedKey: randomBytes(60).toString('base64'),
    chunkSize: 1 << 20,
    attrs: { mode: 0o755, uid: 1000, gid: 1000, mtimeMs: now, atimeMs: now, ctimeMs: now },
  };
}

export function objectDraft(bucket: string, key: string, fields: Partial<ObjectDraft> = {}): ObjectDraft {
  const now = Date.now();
  const chunks = fields.chunks ?? (key.endsWith('/') ? [] : [chunkRef()]);
  return {
    bucket,
    key,
    kind: key.endsWith('/') ? 'dir' : 'file',
    versionId: randomBytes(16).toString('hex'),
    size: chunks.reduce((sum, c) => sum + c.size, 0),
    chunkSize: 1 << 20,
    chunks,
    attrs: { mode: 0o644, uid: 1000, gid: 1000, mtimeMs: now, atimeMs: now, ctimeMs: now },
    committedAt: now,
    ...fields,
  };
}

export function summaryOf(record: ObjectRecord): ObjectSummary {
  const { chunks: _chunks, inline: _inline, ...summary } = record;
  return summary;
}

/** UTF-8 byte order, which is the order every store lists keys in. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Every entry of a listing, objects and prefixes in page order, following `next` to the end. */
export async function listAll(
  store: MetadataStore,
  bucket: string,
  options: ListOptions,
): Promise<{ entries: string[]; pages: number }> {
  const entries: string[] = [];
  let pages = 0;
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list(bucket, { ...options, startAfter });
    pages++;
    const level = [...page.objects.map((o) => o.key), ...page.prefixes].sort(byteOrder);
    entries.push(...level);
    if (page.next === undefined) return { entries, pages };
    if (page.next !== level[level.length - 1]) throw new Error(`next ${page.next} is not the last entry`);
    startAfter = page.next;
    if (pages > 10_000) throw new Error('listing does not end');
  }
}

export async function keysOf(store: MetadataStore, bucket: string, options: ListOptions = {}) {
  const page = await store.list(bucket, options);
  return { objects: page.objects.map((o) => o.key), prefixes: page.prefixes, next: page.next };
}
