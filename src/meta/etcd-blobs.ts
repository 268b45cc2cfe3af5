import { createHash } from 'node:crypto';
import { IntegrityError } from '../core/errors.js';
import { decode, type EtcdConnection } from './etcd-client.js';
import { type BlobRef, type EtcdKeys, encode, newId } from './etcd-keys.js';
import type { TxnPlan } from './etcd-txn.js';

/**
 * Paged lists too big for one etcd value or one transaction (a 100 GiB object
 * has 100,000 chunks, about 20 MB of chunk list): written page by page before
 * the commit that references them, never changed afterwards, deleted in the
 * transaction that drops the last reference.
 *
 * A blob is marked pending (P/q/<id>) before its first page is written, and
 * the commit that makes it reachable removes the mark and checks, in the same
 * transaction, that it was still there. A writer that dies in between leaves
 * a pending blob, which `sweep` deletes once it is older than any commit can
 * take; a commit that loses that race fails instead of pointing at deleted pages.
 */

/** Comfortably under etcd's 1.5 MiB request limit. */
const PAGE_BYTES = 512 * 1024;
/** Pages written at once. */
const PAGE_WRITERS = 4;
/** A pending blob this old belongs to a writer that is gone. */
export const STALE_BLOB_MS = 60 * 60 * 1000;

export function listHash(items: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(items)).digest('hex');
}

export class BlobStore {
  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
  ) {}

  async write(items: readonly unknown[], hash = listHash(items)): Promise<BlobRef> {
    const id = newId();
    await this.conn.write({
      success: [{ request_put: { key: this.keys.blobPending(id), value: encode({ at: Date.now() }) } }],
    });
    const pages: Buffer[] = [];
    let parts: string[] = [];
    let bytes = 2;
    const flush = () => {
      pages.push(Buffer.from(`[${parts.join(',')}]`, 'utf8'));
      parts = [];
      bytes = 2;
    };
    for (const item of items) {
      const text = JSON.stringify(item);
      if (parts.length > 0 && bytes + text.length + 1 > PAGE_BYTES) flush();
      parts.push(text);
      bytes += text.length + 1;
    }
    if (parts.length > 0 || pages.length === 0) flush();
    let next = 0;
    const writer = async () => {
      for (let page = next++; page < pages.length; page = next++) {
        await this.conn.write({
          success: [{ request_put: { key: this.keys.blobPage(id, page), value: pages[page]! } }],
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PAGE_WRITERS, pages.length) }, writer));
    return { id, pages: pages.length, count: items.length, hash };
  }

  /** Every item of a blob, read at `revision` (so pages deleted since are still there). */
  async read<T>(ref: BlobRef, revision?: number): Promise<T[]> {
    const range = this.keys.blobPages(ref.id);
    const items: T[] = [];
    // Page by page: the whole blob may exceed what one response should carry.
    for (let page = 0; page < ref.pages; page++) {
      const { responses } = await this.conn.read([{ key: this.keys.blobPage(ref.id, page) }], revision);
      const kv = responses[0]?.kvs[0];
      if (!kv) throw new IntegrityError(`etcd lost page ${page} of list ${ref.id} (${range.key.toString()})`);
      items.push(...decode<T[]>(kv.value, `page ${page} of list ${ref.id}`));
    }
    if (items.length !== ref.count) {
      throw new IntegrityError(`list ${ref.id} holds ${items.length} items, its reference says ${ref.count}`);
    }
    return items;
  }

  /** In the commit that makes `ref` reachable: fails the commit if the blob was swept meanwhile. */
  adopt(plan: TxnPlan, ref: BlobRef): void {
    const pending = this.keys.blobPending(ref.id);
    plan.exists(pending);
    plan.delete(pending);
  }

  /** In the commit that drops the last reference. */
  drop(plan: TxnPlan, ref: BlobRef): void {
    const range = this.keys.blobPages(ref.id);
    plan.deleteRange(range.key, range.end);
  }

  /** A blob whose commit surely failed (the transaction answered: not applied). */
  async discard(ref: BlobRef): Promise<void> {
    const range = this.keys.blobPages(ref.id);
    await this.conn.write({
      success: [
        { request_delete_range: { key: range.key, range_end: range.end } },
        { request_delete_range: { key: this.keys.blobPending(ref.id) } },
      ],
    });
  }

  /** Deletes pending blobs older than STALE_BLOB_MS (their writers are gone). Returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const range = this.keys.pendingBlobs();
    const found = await this.conn.range({ key: range.key, range_end: range.end, limit: 1000 });
    let swept = 0;
    for (const kv of found.kvs) {
      const { at } = decode<{ at: number }>(kv.value, 'a pending list');
      if (now - at < STALE_BLOB_MS) continue;
      const id = kv.key.subarray(range.key.length).toString('utf8');
      const pages = this.keys.blobPages(id);
      const result = await this.conn.write({
        compare: [{ key: kv.key, target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
        success: [
          { request_delete_range: { key: kv.key } },
          { request_delete_range: { key: pages.key, range_end: pages.end } },
        ],
      });
      if (result.succeeded) swept++;
    }
    return swept;
  }
}
