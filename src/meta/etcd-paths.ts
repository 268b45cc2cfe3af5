import type { IKeyValue, IRangeRequest, IRangeResponse } from 'etcd3';
import { NameTooLongError } from '../core/errors.js';
import type { KeyCache } from './etcd-cache.js';
import { decode, type EtcdConnection, type ReadResult } from './etcd-client.js';
import { type DirEntry, type EtcdKeys, ROOT_DIR } from './etcd-keys.js';
import { dirsOf, parentOf } from './keyspace.js';

/**
 * Directory paths to directory ids. Every lookup reads the entries of every
 * directory on the path in the same transaction as what it is after, so an
 * answer never rests on an id that was renamed or removed meanwhile; the
 * cache of ids only lets that be one round trip instead of one per level.
 * It needs no invalidation: a wrong guess is seen in the answer, corrected,
 * and the read repeated.
 */

export interface DirNode {
  /** 'a/b/' */
  path: string;
  /** Its entry in the parent directory. */
  key: Buffer;
  id: string;
  mod: string;
  create: string;
  entry: DirEntry;
}

export interface PathView {
  /** The bucket record's key-value, if the bucket exists. */
  bucket: IKeyValue | undefined;
  /** The directories of the path that exist, from the top; it stops at the first missing one. */
  chain: DirNode[];
  /** Every directory of the path exists (and `extra` holds the answers to the extra requests). */
  complete: boolean;
  extra: IRangeResponse[];
  revision: number;
  /** Answered from the watch-coherent cache, without a read. */
  cached: boolean;
}

const CACHE_MAX = 100_000;

/** The name a directory has in its parent: 'a/b/' -> 'b/'. */
export function dirName(path: string): string {
  return path.slice(parentOf(path).length);
}

/** The last segment of a non-marker key: 'a/b/c' -> 'c'. */
export function baseName(key: string): string {
  return key.slice(parentOf(key).length);
}

export class PathResolver {
  private readonly ids = new Map<string, string>();
  /** The directory entries and bucket records as last read: the basis of an optimistic commit. */
  private readonly nodes = new Map<string, DirNode>();
  private readonly buckets = new Map<string, IKeyValue>();

  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    /** Deepest directory path a key may have: each level costs a compare in a transaction. */
    readonly maxDepth: number,
    private readonly cache?: KeyCache,
  ) {}

  /** Point reads all answered by the cache, as if read at the newest revision they were read at. */
  private fromCache(requests: IRangeRequest[]): (ReadResult & { cached: boolean }) | undefined {
    if (!this.cache) return undefined;
    const responses: IRangeResponse[] = [];
    let revision = 0;
    for (const request of requests) {
      if (request.range_end) return undefined;
      const hit = this.cache.get(request.key!);
      if (!hit) return undefined;
      revision = Math.max(revision, hit.revision);
      responses.push({ kvs: hit.kv ? [hit.kv] : [], more: false, count: hit.kv ? '1' : '0' } as IRangeResponse);
    }
    return { responses, revision, cached: true };
  }

  private async readAndKeep(requests: IRangeRequest[], revision: number | undefined, deadline: number) {
    const read = await this.conn.read(requests, revision, deadline);
    if (this.cache && revision === undefined) {
      requests.forEach((request, i) => {
        if (!request.range_end) this.cache!.fill(request.key!, read.responses[i]?.kvs[0], read.revision);
      });
    }
    return { ...read, cached: false };
  }

  checkDepth(key: string): void {
    let depth = 0;
    for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) depth++;
    if (depth > this.maxDepth) {
      throw new NameTooLongError(
        `"${key.slice(0, 80)}…" is ${depth} directories deep; the etcd store allows ${this.maxDepth}`,
      );
    }
  }

  /** The cached id of a directory, when there is one (ROOT_DIR for the bucket's root). */
  guess(bucket: string, path: string): string | undefined {
    return path === '' ? ROOT_DIR : this.ids.get(`${bucket}\0${path}`);
  }

  remember(bucket: string, path: string, id: string | undefined): void {
    if (path === '') return;
    if (this.ids.size >= CACHE_MAX) {
      this.ids.clear();
      this.nodes.clear();
    }
    if (id === undefined) {
      this.ids.delete(`${bucket}\0${path}`);
      this.nodes.delete(`${bucket}\0${path}`);
    } else this.ids.set(`${bucket}\0${path}`, id);
  }

  forgetBucket(bucket: string): void {
    for (const key of this.ids.keys()) if (key.startsWith(`${bucket}\0`)) this.ids.delete(key);
    for (const key of this.nodes.keys()) if (key.startsWith(`${bucket}\0`)) this.nodes.delete(key);
    this.buckets.delete(bucket);
  }

  /**
   * The bucket record and the directories of `dirPath` as last read, if all
   * were: possibly stale, so only fit to build a commit whose compares check them.
   */
  lastSeen(bucket: string, dirPath: string): { bucket: IKeyValue; chain: DirNode[] } | undefined {
    const record = this.buckets.get(bucket);
    if (!record) return undefined;
    const chain: DirNode[] = [];
    for (const path of dirsOf(dirPath)) {
      const node = this.nodes.get(`${bucket}\0${path}`);
      if (!node) return undefined;
      chain.push(node);
    }
    return { bucket: record, chain };
  }

  /**
   * Reads the bucket record and the entries of every directory of `dirPath`
   * ('' for the root, else ending with '/'), plus `extra(leafId)` once the
   * last directory's id is known, all at one revision.
   */
  async resolve(
    bucket: string,
    dirPath: string,
    extra: (leafId: string) => IRangeRequest[] = () => [],
    revision?: number,
    deadline = this.conn.deadline(),
    fresh = false,
  ): Promise<PathView> {
    const paths = dirsOf(dirPath);
    for (;;) {
      const requests: IRangeRequest[] = [{ key: this.keys.bucket(bucket) }];
      // The guesses this read is built on (other lookups may update the cache meanwhile).
      const guesses: (string | undefined)[] = [];
      let parent: string | undefined = ROOT_DIR;
      for (const path of paths) {
        if (parent === undefined) break;
        requests.push({ key: this.keys.entry(bucket, parent, dirName(path)) });
        parent = this.guess(bucket, path);
        guesses.push(parent);
      }
      const built = guesses.length;
      const leafGuess = built === paths.length ? parent : undefined;
      const extraRequests = leafGuess === undefined ? [] : extra(leafGuess);
      requests.push(...extraRequests);
      const read =
        (!fresh && revision === undefined && this.fromCache(requests)) ||
        (await this.readAndKeep(requests, revision, deadline));
      revision = read.revision;
      const view: PathView = {
        bucket: read.responses[0]?.kvs[0],
        chain: [],
        complete: false,
        extra: [],
        revision,
        cached: read.cached,
      };
      if (!view.bucket) {
        this.buckets.delete(bucket);
        return view;
      }
      if (this.buckets.size >= CACHE_MAX) this.buckets.clear();
      this.buckets.set(bucket, view.bucket);
      let guessedRight = true;
      for (let i = 0; i < built && guessedRight; i++) {
        const kv = read.responses[i + 1]?.kvs[0];
        const path = paths[i]!;
        if (!kv) {
          // Read under the right parent id: the path ends here for certain.
          this.remember(bucket, path, undefined);
          return view;
        }
        const entry = decode<DirEntry>(kv.value, `directory ${bucket}/${path}`);
        if (guesses[i] !== entry.id) {
          this.remember(bucket, path, entry.id);
          guessedRight = false;
        }
        const node = { path, key: kv.key, id: entry.id, mod: kv.mod_revision, create: kv.create_revision, entry };
        this.nodes.set(`${bucket}\0${path}`, node);
        view.chain.push(node);
      }
      if (guessedRight && built === paths.length) {
        view.complete = true;
        view.extra = read.responses.slice(1 + built);
        return view;
      }
    }
  }
}

/** The revision at which a directory arrived at its path: created there, or moved there. */
export function arrivedAt(node: DirNode): number {
  const moved = node.entry.mv;
  if (moved === true) return Number(node.mod);
  return moved ?? Number(node.create);
}

/**
 * The version of a record: its entry's last change, or a later arrival of a
 * directory above it at its path (a renamePrefix moves every record below
 * without touching them; they still get new versions). A marker changed on a
 * directory above does not count: the records below did not change.
 */
export function versionOf(mod: string, chain: readonly DirNode[]): number {
  let version = Number(mod);
  for (const node of chain) version = Math.max(version, arrivedAt(node));
  return version;
}
