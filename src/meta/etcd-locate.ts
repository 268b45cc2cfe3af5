import type { IKeyValue, IRangeRequest } from 'etcd3';
import type { ChunkRef, ObjectRecord } from '../core/types.js';
import type { BlobStore } from './etcd-blobs.js';
import { decode, type EtcdConnection } from './etcd-client.js';
import type { Children, NeedChildren, Snapshot } from './etcd-edit.js';
import type { GarbageQueue } from './etcd-garbage.js';
import {
  type DirEntry,
  type EtcdKeys,
  type ObjectEntry,
  ROOT_DIR,
  type StoredBody,
  type StoredSummary,
} from './etcd-keys.js';
import { baseName, type DirNode, type PathResolver, type PathView, versionOf } from './etcd-paths.js';
import { recordOf } from './etcd-records.js';
import { isMarker, parentOf } from './keyspace.js';

/**
 * Finding one record (an object's entry, or a directory's marker) together
 * with what a commit touching it needs to know, in one read: the directories
 * on its path, its body, the first entries of its directory (to tell whether
 * removing it empties the directory), and whether the garbage journal and
 * queue are empty.
 */

export interface Located {
  view: PathView;
  key: string;
  /** The record's summary and body, if it exists. */
  summary?: StoredSummary;
  body?: StoredBody;
  version?: number;
  /** The token of the commit that wrote it. */
  token?: string;
  /** For an object key: its entry and body key-values. */
  entryKv?: IKeyValue;
  entry?: ObjectEntry;
  bodyKv?: IKeyValue;
  /** For a marker key: its directory's node. */
  dirNode?: DirNode;
  children?: Children;
  /** With `dirToo`: the directory named like the key, if there is one. */
  sameNamedDir?: DirNode;
  journalEmpty: boolean;
  queueEmpty: boolean;
}

export interface LocateOptions {
  /** Read the first entries of the record's directory (for removals). */
  children?: boolean;
  /** Whether the garbage journal and queue are empty (for commits). */
  probes?: boolean;
  /** For an object key, also the directory of the same name ('a' and 'a/'), for lookup. */
  dirToo?: boolean;
  /** Read from etcd even what the watch-coherent cache holds. */
  fresh?: boolean;
}

const CHILDREN_PEEK = 3;

export class Locator {
  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    private readonly paths: PathResolver,
    private readonly blobs: BlobStore,
    private readonly garbage: GarbageQueue,
  ) {}

  async locate(bucket: string, key: string, options: LocateOptions = {}): Promise<Located> {
    const marker = isMarker(key);
    // A marker lives in its directory's entry, the last one on its own path.
    const dirPath = marker ? key : parentOf(key);
    const name = baseName(key);
    const view = await this.paths.resolve(
      bucket,
      dirPath,
      (id) => {
        const requests: IRangeRequest[] = [];
        if (options.probes) requests.push(this.garbage.journalProbe(), this.garbage.queueProbe());
        if (!marker)
          requests.push({ key: this.keys.entry(bucket, id, name) }, { key: this.keys.body(bucket, id, name) });
        if (!marker && options.dirToo) requests.push({ key: this.keys.entry(bucket, id, `${name}/`) });
        if (options.children) requests.push(this.childrenRequest(bucket, id, CHILDREN_PEEK));
        return requests;
      },
      undefined,
      undefined,
      options.fresh,
    );
    const located: Located = { view, key, journalEmpty: false, queueEmpty: false };
    if (!view.complete) return located;
    const answers = [...view.extra];
    if (options.probes) {
      located.journalEmpty = answers.shift()!.kvs.length === 0;
      located.queueEmpty = answers.shift()!.kvs.length === 0;
    }
    const leaf = view.chain.at(-1);
    if (marker) {
      const node = leaf!;
      located.dirNode = node;
      if (node.entry.m) {
        located.summary = node.entry.m.s;
        located.body = node.entry.m.b;
        located.version = versionOf(node.mod, view.chain.slice(0, -1));
        located.token = node.entry.t;
      }
    } else {
      const kv = answers.shift()!.kvs[0];
      const bodyKv = answers.shift()!.kvs[0];
      if (kv) {
        const entry = decode<ObjectEntry>(kv.value, `${bucket}/${key}`);
        located.entryKv = kv;
        located.entry = entry;
        located.bodyKv = bodyKv;
        located.summary = entry.s;
        located.body = entry.b ?? (bodyKv ? decode<StoredBody>(bodyKv.value, `${bucket}/${key}`) : {});
        located.version = versionOf(kv.mod_revision, view.chain);
        located.token = entry.t;
      }
      if (options.dirToo) {
        const dirKv = answers.shift()!.kvs[0];
        if (dirKv) located.sameNamedDir = Locator.dirNode(`${key}/`, dirKv, bucket);
      }
    }
    if (options.children) {
      const read = answers.shift()!;
      located.children = { id: leaf?.id ?? ROOT_DIR, kvs: read.kvs, more: read.more };
    }
    // A cached entry may point at pages deleted since (its change not yet seen): read those afresh.
    if (view.cached && (located.body?.blob || located.sameNamedDir?.entry.m?.b.blob)) {
      return this.locate(bucket, key, { ...options, fresh: true });
    }
    return located;
  }

  /** Adds what `located` found to a snapshot. */
  absorb(snapshot: Snapshot, located: Located): void {
    const marker = isMarker(located.key);
    const dirPath = marker ? located.key : parentOf(located.key);
    snapshot.addPath(located.view, dirPath);
    if (!located.view.complete) return;
    if (!marker)
      snapshot.objects.set(located.key, { kv: located.entryKv, entry: located.entry, bodyKv: located.bodyKv });
    if (located.children) snapshot.children.set(dirPath, located.children);
    snapshot.journalEmpty = located.journalEmpty;
    snapshot.queueEmpty = located.queueEmpty;
  }

  /** Reads what a plan said it needs: more entries of one directory. */
  async readChildren(snapshot: Snapshot, need: NeedChildren): Promise<void> {
    const limit = Math.max(need.limit, CHILDREN_PEEK);
    const found = await this.conn.range(this.childrenRequest(snapshot.name, need.id, limit));
    snapshot.children.set(need.path, { id: need.id, kvs: found.kvs, more: found.more });
  }

  /** The record with its whole chunk list (reading a blob, at the revision the record was read at). */
  async record(bucket: string, located: Located): Promise<ObjectRecord | undefined> {
    if (!located.summary || located.version === undefined) return undefined;
    const chunks = await this.chunks(located.body, located.view.revision);
    return recordOf(bucket, located.key, located.version, located.summary, chunks, located.body?.inline);
  }

  async chunks(body: StoredBody | undefined, revision?: number): Promise<ChunkRef[]> {
    if (!body) return [];
    if (body.blob) return this.blobs.read<ChunkRef>(body.blob, revision);
    return body.chunks ?? [];
  }

  /** A directory's node as the entry read in its parent shows it. */
  static dirNode(path: string, kv: IKeyValue, bucket: string): DirNode {
    const entry = decode<DirEntry>(kv.value, `directory ${bucket}/${path}`);
    return { path, key: kv.key, id: entry.id, mod: kv.mod_revision, create: kv.create_revision, entry };
  }

  childrenRequest(bucket: string, id: string, limit: number): IRangeRequest {
    const range = this.keys.entries(bucket, id);
    return { key: range.key, range_end: range.end, limit, keys_only: true };
  }
}
