import type { IKeyValue } from 'etcd3';
import { NotFoundError } from '../core/errors.js';
import type { ChunkRef, ObjectRecord } from '../core/types.js';
import { pageLimit } from './commit-rules.js';
import type { BlobStore } from './etcd-blobs.js';
import { decode, type EtcdConnection } from './etcd-client.js';
import { type DirEntry, type EtcdKeys, type ObjectEntry, ROOT_DIR, type StoredBody, successor } from './etcd-keys.js';
import { type DirNode, type PathResolver, versionOf } from './etcd-paths.js';
import { recordOf, summaryOf } from './etcd-records.js';
import { compareKeys, levelOf, listStart } from './keyspace.js';
import type { ListOptions, ListPage } from './store.js';

/**
 * Reading the tree: one level (a listing with a delimiter: one range read of
 * one directory's entries), a walk in key order (a recursive listing,
 * iterateObjects: depth first, one range read per directory visited), and
 * everything below a directory id (garbage rescue, counting a moved tree).
 * A walk reads at one revision, so it sees one state of the tree.
 */

const WALK_PAGE = 1000;

export interface WalkItem {
  key: string;
  kv: IKeyValue;
  /** An object's entry, or for a marker the directory's entry. */
  object?: ObjectEntry;
  dir?: DirEntry;
  /** The directories above the record (for a marker: above its directory). */
  chain: DirNode[];
  /** The revision the walk reads at. */
  revision: number;
}

export class TreeReader {
  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    private readonly paths: PathResolver,
    private readonly blobs: BlobStore,
  ) {}

  async listLevel(bucket: string, options: ListOptions): Promise<ListPage> {
    const prefix = options.prefix ?? '';
    const limit = pageLimit(options.limit);
    const start = listStart(prefix, options.startAfter);
    const level = levelOf(prefix);
    const partial = prefix.slice(level.length);
    const lowest = lowestName(level, partial, start);
    const view = await this.paths.resolve(bucket, level, (id) => {
      if (lowest === undefined) return [];
      // One entry below `start` may come back (the directory `start` lies in), hence +2.
      const { end } = this.keys.entries(bucket, id, partial);
      return [{ key: this.keys.entry(bucket, id, lowest), range_end: end, limit: limit + 2 }];
    });
    if (!view.bucket) throw new NotFoundError(`bucket ${bucket} does not exist`);
    const page: ListPage = { objects: [], prefixes: [] };
    if (!view.complete || lowest === undefined) return page;
    const id = view.chain.at(-1)?.id ?? ROOT_DIR;
    const entries = (view.extra[0]?.kvs ?? [])
      .map((kv) => ({ kv, key: level + this.keys.entryName(bucket, id, kv.key) }))
      .filter((e) => compareKeys(e.key, start) >= 0);
    for (const { kv, key } of entries.slice(0, limit)) {
      if (key.endsWith('/')) page.prefixes.push(key);
      else {
        const entry = decode<ObjectEntry>(kv.value, `${bucket}/${key}`);
        page.objects.push(summaryOf(bucket, key, versionOf(kv.mod_revision, view.chain), entry.s));
      }
    }
    if (entries.length > limit) page.next = entries[limit - 1]!.key;
    return page;
  }

  async listRecursive(bucket: string, options: ListOptions): Promise<ListPage> {
    const prefix = options.prefix ?? '';
    const limit = pageLimit(options.limit);
    const page: ListPage = { objects: [], prefixes: [] };
    let last = '';
    for await (const item of this.walk(bucket, prefix, listStart(prefix, options.startAfter))) {
      if (page.objects.length === limit) {
        page.next = last;
        break;
      }
      const version = versionOf(item.kv.mod_revision, item.chain);
      page.objects.push(summaryOf(bucket, item.key, version, (item.object ?? item.dir!.m!).s));
      last = item.key;
    }
    return page;
  }

  /** Records (markers included) from `start` on, in key order, while their keys start with `prefix`. */
  async *walk(bucket: string, prefix: string, start: string): AsyncGenerator<WalkItem> {
    const level = levelOf(prefix);
    // Read, not cached: a walk reads everything at one revision.
    const view = await this.paths.resolve(bucket, level, undefined, undefined, undefined, true);
    if (!view.bucket) throw new NotFoundError(`bucket ${bucket} does not exist`);
    if (!view.complete) return;
    const node = view.chain.at(-1);
    if (node?.entry.m && prefix === level && compareKeys(level, start) >= 0) {
      const kv = { key: node.key, mod_revision: node.mod, create_revision: node.create } as IKeyValue;
      yield { key: level, kv, dir: node.entry, chain: view.chain.slice(0, -1), revision: view.revision };
    }
    const at = { revision: view.revision };
    yield* this.walkDir(bucket, level, node?.id ?? ROOT_DIR, view.chain, start, prefix.slice(level.length), at);
  }

  private async *walkDir(
    bucket: string,
    path: string,
    id: string,
    chain: DirNode[],
    start: string,
    partial: string,
    at: { revision: number | undefined },
  ): AsyncGenerator<WalkItem> {
    const lowest = lowestName(path, partial, start);
    if (lowest === undefined) return;
    const end = this.keys.entries(bucket, id, partial).end;
    let from = this.keys.entry(bucket, id, lowest);
    for (;;) {
      const read = await this.conn.read([{ key: from, range_end: end, limit: WALK_PAGE }], at.revision);
      at.revision = read.revision;
      const revision = read.revision;
      const found = read.responses[0]!;
      for (const kv of found.kvs) {
        const key = path + this.keys.entryName(bucket, id, kv.key);
        if (!key.endsWith('/')) {
          if (compareKeys(key, start) >= 0) {
            yield { key, kv, object: decode<ObjectEntry>(kv.value, `${bucket}/${key}`), chain, revision };
          }
          continue;
        }
        const dir = decode<DirEntry>(kv.value, `directory ${bucket}/${key}`);
        if (dir.m && compareKeys(key, start) >= 0) yield { key, kv, dir, chain, revision };
        const node: DirNode = {
          path: key,
          key: kv.key,
          id: dir.id,
          mod: kv.mod_revision,
          create: kv.create_revision,
          entry: dir,
        };
        yield* this.walkDir(bucket, key, dir.id, [...chain, node], start, '', at);
      }
      if (!found.more || found.kvs.length === 0) return;
      from = successor(found.kvs.at(-1)!.key);
    }
  }

  /** Every entry below directory `id`, breadth first, at one revision. */
  async *under(
    bucket: string,
    id: string,
    revision?: number,
  ): AsyncGenerator<{ kv: IKeyValue; name: string; dirId: string }> {
    const pending = [id];
    while (pending.length > 0) {
      const dirId = pending.shift()!;
      const range = this.keys.entries(bucket, dirId);
      let from = range.key;
      for (;;) {
        const read = await this.conn.read([{ key: from, range_end: range.end, limit: WALK_PAGE }], revision);
        revision = read.revision;
        const found = read.responses[0]!;
        for (const kv of found.kvs) {
          const name = this.keys.entryName(bucket, dirId, kv.key);
          if (name.endsWith('/')) pending.push(decode<DirEntry>(kv.value, `directory ${name}`).id);
          yield { kv, name, dirId };
        }
        if (!found.more || found.kvs.length === 0) break;
        from = successor(found.kvs.at(-1)!.key);
      }
    }
  }
  /** Full records for walked items: bodies kept in their own keys are read at the walk's revision. */
  async records(bucket: string, items: WalkItem[]): Promise<ObjectRecord[]> {
    const needBody = items.filter((item) => item.object && !item.object.b);
    const bodies = new Map<WalkItem, StoredBody>();
    if (needBody.length > 0) {
      const { responses } = await this.conn.read(
        needBody.map((item) => ({ key: this.bodyKeyOf(bucket, item) })),
        items[0]!.revision,
      );
      needBody.forEach((item, i) => {
        const kv = responses[i]!.kvs[0];
        bodies.set(item, kv ? decode<StoredBody>(kv.value, `${bucket}/${item.key}`) : {});
      });
    }
    const records: ObjectRecord[] = [];
    for (const item of items) {
      const stored = item.object ?? item.dir!.m!;
      const body = item.object ? (item.object.b ?? bodies.get(item)!) : item.dir!.m!.b;
      const chunks = await this.chunksOf(body, item.revision);
      const version = versionOf(item.kv.mod_revision, item.chain);
      records.push(recordOf(bucket, item.key, version, stored.s, chunks, body.inline));
    }
    return records;
  }

  /** The chunk ids of every record below directory `dirId`, a record at a time. */
  async *chunkIdsUnder(bucket: string, dirId: string): AsyncIterable<string[]> {
    for await (const { kv, name, dirId: parent } of this.under(bucket, dirId)) {
      let body: StoredBody | undefined;
      if (name.endsWith('/')) body = decode<DirEntry>(kv.value, `directory ${name}`).m?.b;
      else {
        const entry = decode<ObjectEntry>(kv.value, `${bucket}/${name}`);
        body = entry.b;
        if (!body) {
          const found = await this.conn.range({ key: this.keys.body(bucket, parent, name) });
          body = found.kvs[0] ? decode<StoredBody>(found.kvs[0].value, `${bucket}/${name}`) : {};
        }
      }
      const chunks = await this.chunksOf(body);
      if (chunks.length > 0) yield chunks.map((c) => c.id);
    }
  }

  /** How many records lie below directory `dirId` (objects and markers), at `revision`. */
  async countUnder(bucket: string, dirId: string, revision: number): Promise<number> {
    let count = 0;
    for await (const { kv, name } of this.under(bucket, dirId, revision)) {
      if (!name.endsWith('/') || decode<DirEntry>(kv.value, `directory ${name}`).m) count++;
    }
    return count;
  }

  private chunksOf(body: StoredBody | undefined, revision?: number): Promise<ChunkRef[]> | ChunkRef[] {
    if (body?.blob) return this.blobs.read<ChunkRef>(body.blob, revision);
    return body?.chunks ?? [];
  }

  private bodyKeyOf(bucket: string, item: WalkItem): Buffer {
    const dirId = item.chain.at(-1)?.id ?? ROOT_DIR;
    return this.keys.body(bucket, dirId, item.key.slice(item.key.lastIndexOf('/') + 1));
  }
}

/**
 * The first name to read in directory `path` for keys from `start` on that
 * start with path + `partial`; undefined when `start` lies past the directory.
 * When `start` lies inside a subdirectory, reading starts at that subdirectory.
 */
function lowestName(path: string, partial: string, start: string): string | undefined {
  if (!start.startsWith(path)) return compareKeys(start, path) < 0 ? partial : undefined;
  const rest = start.slice(path.length);
  const slash = rest.indexOf('/');
  const from = slash >= 0 ? rest.slice(0, slash + 1) : rest;
  if (compareKeys(from, partial) <= 0) return partial;
  return from.startsWith(partial) ? from : undefined;
}
