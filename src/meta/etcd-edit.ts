import type { IKeyValue } from 'etcd3';
import { IntegrityError } from '../core/errors.js';
import { type DirEntry, type EtcdKeys, encode, newId, type ObjectEntry, ROOT_DIR, successor } from './etcd-keys.js';
import { arrivedAt, baseName, type DirNode, dirName, type PathView } from './etcd-paths.js';
import { TxnPlan } from './etcd-txn.js';
import { dirsOf, parentOf } from './keyspace.js';

/**
 * Turns changes to a bucket's tree into one etcd transaction. The changes are
 * planned against a Snapshot of what was read, and every fact the plan relies
 * on becomes a compare, so the transaction applies exactly when the tree is
 * still as read: the directories on each path (their entries unchanged, so
 * their ids still mean those paths), the records replaced or removed, the
 * absence of what is created, and for a directory that loses an entry,
 * either a sibling that stays or the proof that nothing else is left in it.
 * That last one is how an implicit directory goes away with its last key,
 * as the other stores do, without a counter that every create would contend on.
 */

export interface ObjectState {
  /** The entry, when the key exists. */
  kv?: IKeyValue;
  entry?: ObjectEntry;
  /** The separate body key, when there is one. */
  bodyKv?: IKeyValue;
}

export interface Children {
  id: string;
  /** The first entries of the directory, in key order. */
  kvs: IKeyValue[];
  more: boolean;
}

/** More has to be read before the plan can be made. */
export class NeedChildren extends Error {
  constructor(
    readonly path: string,
    readonly id: string,
    readonly limit: number,
  ) {
    super(`the entries of ${path || 'the root'} are needed`);
  }
}

/** What the plan is made against. */
export class Snapshot {
  readonly dirs = new Map<string, DirNode | null>();
  readonly objects = new Map<string, ObjectState>();
  readonly children = new Map<string, Children>();
  journalEmpty = false;
  queueEmpty = false;

  constructor(
    readonly name: string,
    readonly bucket: IKeyValue,
  ) {}

  /** Records the directories a resolve found, and that the path ends where it found none. */
  addPath(view: PathView, dirPath: string): void {
    for (const node of view.chain) this.dirs.set(node.path, node);
    if (!view.complete) for (const path of dirsOf(dirPath).slice(view.chain.length)) this.dirs.set(path, null);
  }
}

interface DirState {
  path: string;
  id: string;
  /** Its entry as read; null when it is created here (and for the root, which has none). */
  node: DirNode | null;
  /** It existed before this plan (the root always does). */
  existed: boolean;
  /** The entry after the changes; undefined when the directory goes. */
  entry: DirEntry | undefined;
  dirty: boolean;
  /** Entry keys of children removed here. */
  lost: Buffer[];
  gained: number;
  markerRemoved: boolean;
}

export class TreeEdit {
  readonly plan = new TxnPlan();
  private readonly states = new Map<string, DirState>();

  constructor(
    private readonly keys: EtcdKeys,
    private readonly bucket: string,
    private readonly snapshot: Snapshot,
    private readonly token: string,
  ) {}

  /** Writes the record of a non-marker key; `body` goes to its own key when given. */
  putObject(key: string, entry: ObjectEntry, body?: Buffer): void {
    const dir = this.ensureDir(parentOf(key));
    const name = baseName(key);
    const entryKey = this.keys.entry(this.bucket, dir.id, name);
    const bodyKey = this.keys.body(this.bucket, dir.id, name);
    const current = dir.existed ? this.object(key) : {};
    if (current.kv) this.plan.unchanged(entryKey, current.kv.mod_revision);
    else {
      if (dir.existed) this.plan.absent(entryKey);
      dir.gained++;
    }
    this.plan.put(entryKey, encode(entry));
    if (body) this.plan.put(bodyKey, body);
    else if (current.bodyKv) this.plan.delete(bodyKey);
  }

  removeObject(key: string): void {
    const dir = this.existingDir(parentOf(key));
    const current = this.object(key);
    if (!current.kv) throw new IntegrityError(`planned to remove ${this.bucket}/${key}, which is not there`);
    const name = baseName(key);
    this.plan.unchanged(current.kv.key, current.kv.mod_revision);
    this.plan.delete(current.kv.key);
    if (current.bodyKv) this.plan.delete(this.keys.body(this.bucket, dir.id, name));
    dir.lost.push(current.kv.key);
  }

  putMarker(path: string, marker: NonNullable<DirEntry['m']>): void {
    const dir = this.ensureDir(path);
    dir.entry = { id: dir.id, m: marker, t: this.token, ...arrival(dir.node) };
    dir.dirty = true;
  }

  removeMarker(path: string): void {
    const dir = this.existingDir(path);
    dir.entry = { id: dir.id, t: this.token, ...arrival(dir.node) };
    dir.dirty = true;
    dir.markerRemoved = true;
  }

  /** renamePrefix: the directory `from` becomes `to` (which, if it exists, must be empty: `toChildren`). */
  moveDir(from: string, to: string, toChildren: Children | undefined): void {
    const source = this.existingDir(from);
    const marker = source.entry!.m;
    const target = this.dirState(to);
    const entry: DirEntry = { id: source.id, t: this.token, mv: true, ...(marker ? { m: marker } : {}) };
    if (target) {
      if (!toChildren || toChildren.kvs.length > 0) throw new IntegrityError(`planned to move onto ${to}, not empty`);
      const range = this.keys.entries(this.bucket, target.id);
      this.plan.emptyRange(range.key, range.end);
      target.entry = entry;
      target.id = source.id;
      target.dirty = true;
    } else {
      const parent = this.ensureDir(parentOf(to));
      parent.gained++;
      this.states.set(to, { ...this.blank(to, source.id, null), entry, dirty: true });
    }
    source.entry = undefined;
    this.existingDir(parentOf(from)).lost.push(source.node!.key);
  }

  /** Prunes directories left empty and adds the compares for every directory relied on. */
  finish(): TxnPlan {
    const depth = (path: string) => dirsOf(path).length;
    for (let level = Math.max(0, ...[...this.states.keys()].map(depth)); level > 0; level--) {
      for (const state of [...this.states.values()]) {
        if (depth(state.path) === level && state.entry && (state.lost.length > 0 || state.markerRemoved)) {
          this.pruneIfEmpty(state);
        }
      }
    }
    this.plan.created(this.keys.bucket(this.bucket), this.snapshot.bucket.create_revision);
    for (const state of this.states.values()) {
      for (const path of dirsOf(state.path)) {
        const node = this.snapshot.dirs.get(path);
        if (node) this.plan.unchanged(node.key, node.mod);
      }
      if (state.path === '') continue;
      const key = this.entryKey(state);
      if (!state.entry) {
        if (state.node) this.plan.delete(state.node.key);
      } else if (state.dirty) {
        if (!state.node && this.parentExisted(state.path)) this.plan.absent(key);
        this.plan.put(key, encode(state.entry));
      }
    }
    return this.plan;
  }

  private pruneIfEmpty(state: DirState): void {
    if (state.entry?.m || state.gained > 0) return;
    const known = this.snapshot.children.get(state.path);
    if (!known || known.id !== state.id) throw new NeedChildren(state.path, state.id, state.lost.length + 1);
    const lost = new Set(state.lost.map((k) => k.toString('latin1')));
    const staying = known.kvs.find((kv) => !lost.has(kv.key.toString('latin1')));
    if (staying) {
      // A sibling that is still there when this commits keeps the directory alive.
      this.plan.created(staying.key, staying.create_revision);
      return;
    }
    if (known.more) throw new NeedChildren(state.path, state.id, known.kvs.length + state.lost.length + 1);
    const range = this.keys.entries(this.bucket, state.id);
    let from = range.key;
    for (const key of [...state.lost].sort(Buffer.compare)) {
      this.plan.emptyRange(from, key);
      from = successor(key);
    }
    this.plan.emptyRange(from, range.end);
    state.entry = undefined;
    this.existingDir(parentOf(state.path)).lost.push(this.entryKey(state));
  }

  private object(key: string): ObjectState {
    const state = this.snapshot.objects.get(key);
    if (!state) throw new IntegrityError(`planned a change to ${this.bucket}/${key} without reading it`);
    return state;
  }

  private dirState(path: string): DirState | undefined {
    const state = this.states.get(path);
    if (state) return state.entry ? state : undefined;
    if (path === '') return this.track({ ...this.blank('', ROOT_DIR, null), existed: true, entry: { id: ROOT_DIR } });
    const node = this.snapshot.dirs.get(path);
    if (node === undefined) throw new IntegrityError(`planned a change in ${this.bucket}/${path} without reading it`);
    if (node === null) return undefined;
    return this.track({ ...this.blank(path, node.id, node), existed: true, entry: node.entry });
  }

  private existingDir(path: string): DirState {
    const state = this.dirState(path);
    if (!state) throw new IntegrityError(`planned a change in ${this.bucket}/${path}, which does not exist`);
    return state;
  }

  private ensureDir(path: string): DirState {
    const existing = this.dirState(path);
    if (existing) return existing;
    const parent = this.ensureDir(parentOf(path));
    parent.gained++;
    const id = newId();
    return this.track({ ...this.blank(path, id, null), entry: { id, t: this.token }, dirty: true });
  }

  private track(state: DirState): DirState {
    this.states.set(state.path, state);
    return state;
  }

  private blank(path: string, id: string, node: DirNode | null): DirState {
    return {
      path,
      id,
      node,
      existed: false,
      entry: undefined,
      dirty: false,
      lost: [],
      gained: 0,
      markerRemoved: false,
    };
  }

  private entryKey(state: DirState): Buffer {
    if (state.node) return state.node.key;
    const parent = this.states.get(parentOf(state.path)) ?? this.dirState(parentOf(state.path));
    return this.keys.entry(this.bucket, parent!.id, dirName(state.path));
  }

  private parentExisted(path: string): boolean {
    const parent = parentOf(path);
    return parent === '' || Boolean(this.snapshot.dirs.get(parent));
  }
}

/** Rewriting an existing entry (its marker) keeps the revision its directory arrived at. */
function arrival(node: DirNode | null): { mv?: number } {
  return node ? { mv: arrivedAt(node) } : {};
}
