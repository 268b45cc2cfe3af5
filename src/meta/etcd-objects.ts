import type { ITxnResponse } from 'etcd3';
import {
  CommitUnknownError,
  describeError,
  ExistsError,
  LilioError,
  NotEmptyError,
  NotFoundError,
  UnavailableError,
} from '../core/errors.js';
import type { ChunkRef, GarbageEntry, ObjectDraft, ObjectRecord } from '../core/types.js';
import { checkExchange, checkExpect, checkPrefixRename, orphanedChunks } from './commit-rules.js';
import { type BlobStore, listHash } from './etcd-blobs.js';
import { AmbiguousCommit, type EtcdConnection } from './etcd-client.js';
import { NeedChildren, Snapshot, TreeEdit } from './etcd-edit.js';
import type { GarbageChange, GarbageQueue } from './etcd-garbage.js';
import { type BlobRef, type EtcdKeys, newId, type StoredBody, type StoredSummary } from './etcd-keys.js';
import type { Located, Locator } from './etcd-locate.js';
import type { PathResolver } from './etcd-paths.js';
import { bodyOf, KEY_BODY_BYTES, placeBody, splitRecord } from './etcd-records.js';
import type { TxnPlan } from './etcd-txn.js';
import { isMarker, parentOf } from './keyspace.js';
import type { Expect } from './store.js';

/**
 * The object commits of EtcdMetadataStore. Each one reads what it changes
 * (Locator), plans the change (TreeEdit) with its garbage (GarbageQueue), and
 * commits it as one transaction that applies only if nothing it read has
 * changed; otherwise it reads again and decides again. Every commit carries a
 * token, so that after an answer lost in transit the retry recognises its own
 * commit instead of reporting a conflict with itself.
 */

/** More for an object commit's transaction; returns chunks it stops referencing (see ObjectCommits.put). */
export type CommitRider = (plan: TxnPlan) => Promise<GarbageEntry[]>;

/** A commit retried this often against other writers gives up. */
const MAX_ATTEMPTS = 64;

/** Since when commits have been failing without an answer. */
interface Failing {
  since: number | undefined;
}

interface Outcome<T> {
  done: true;
  value: T;
}

export class ObjectCommits {
  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    private readonly locator: Locator,
    private readonly paths: PathResolver,
    private readonly blobs: BlobStore,
    private readonly garbage: GarbageQueue,
    /** After a commit (or one whose answer was lost), with the keys it wrote. */
    private readonly committed: (written: Buffer[]) => void,
  ) {}

  /**
   * `rider`: more for the same transaction (a multipart completion removes its
   * upload), planned anew in every attempt; returns chunks to queue with it.
   */
  async put(draft: ObjectDraft, expect: Expect, rider?: CommitRider): Promise<ObjectRecord> {
    const { bucket, key } = draft;
    const { summary, chunks, inline } = splitRecord(draft);
    const token = newId();
    const big = chunks.length > 0 && JSON.stringify(chunks).length > KEY_BODY_BYTES;
    const hash = big ? listHash(chunks) : '';
    let written: BlobRef | undefined;
    let ambiguous = false;
    if (expect === 'absent' && !big && !isMarker(key) && !rider) {
      const created = await this.createAsLastSeen(draft, token, () => {
        ambiguous = true;
      });
      if (created) return created;
    }
    try {
      return await this.attempts(async (failing) => {
        const at = await this.locator.locate(bucket, key, { probes: true });
        if (!at.view.bucket) throw new NotFoundError(`bucket ${bucket} does not exist`);
        if (at.token === token) return done({ ...draft, version: at.version! } as ObjectRecord);
        checkExpect(bucket, key, at.summary ? { version: at.version! } : undefined, expect);
        const old = at.body;
        const reused = big && old?.blob?.hash === hash ? old.blob : undefined;
        let body: StoredBody;
        if (!big) body = bodyOf(chunks, inline);
        else {
          written = reused ? written : (written ?? (await this.blobs.write(chunks, hash)));
          body = { ...(inline !== undefined ? { inline } : {}), blob: reused ?? written! };
        }
        const snapshot = this.snapshot(bucket, at);
        const change: GarbageChange = {
          ...replacedBy(reused ? undefined : old, chunks),
          rescue: chunks.map((c) => c.id),
          rescueKeys: chunks.length > 0 || old?.blob ? [[bucket, key]] : [],
          rescueDirs: [],
        };
        const plan = await this.plan(snapshot, token, (edit) => this.place(edit, key, summary, body, token));
        if (body.blob && !reused) this.blobs.adopt(plan, body.blob);
        if (rider) change.retire.push(...(await rider(plan)));
        const result = await this.commit(plan, change, snapshot.journalEmpty, failing, () => {
          ambiguous = true;
        });
        return result && done({ ...draft, version: Number(result.header.revision) } as ObjectRecord);
      });
    } catch (err) {
      // Pages nobody can reference any more; after a lost answer they may be in use, so they stay.
      if (written && !ambiguous) await this.blobs.discard(written).catch(() => undefined);
      throw ambiguous ? unknownOutcome(err, `put of ${bucket}/${key}`) : err;
    }
  }

  async delete(bucket: string, key: string, expect: Expect): Promise<ObjectRecord | undefined> {
    let removed: ObjectRecord | undefined;
    let ambiguous = false;
    const deleting = this.attempts(async (failing) => {
      const at = await this.locator.locate(bucket, key, { children: true, probes: true });
      if (!at.summary) {
        // Gone after a commit whose answer was lost: that was this delete.
        if (ambiguous && removed) return done(removed);
        checkExpect(bucket, key, undefined, expect);
        return done(undefined);
      }
      checkExpect(bucket, key, { version: at.version! }, expect);
      removed = await this.locator.record(bucket, at);
      const snapshot = this.snapshot(bucket, at);
      const token = newId();
      const plan = await this.plan(snapshot, token, (edit) => {
        if (isMarker(key)) edit.removeMarker(key);
        else edit.removeObject(key);
      });
      const change: GarbageChange = { ...replacedBy(at.body, []), rescue: [], rescueKeys: [], rescueDirs: [] };
      const result = await this.commit(plan, change, snapshot.journalEmpty, failing, () => {
        ambiguous = true;
      });
      return result && done(removed);
    });
    return deleting.catch((err) => {
      throw ambiguous ? unknownOutcome(err, `delete of ${bucket}/${key}`, removed) : err;
    });
  }

  async rename(bucket: string, from: string, to: string, replace: boolean): Promise<ObjectRecord> {
    const token = newId();
    let ambiguous = false;
    let moving: ObjectRecord | undefined;
    const renaming = this.attempts(async (failing) => {
      const [source, target] = await Promise.all([
        this.locator.locate(bucket, from, { children: true, probes: true }),
        from === to ? undefined : this.locator.locate(bucket, to, { probes: true }),
      ]);
      if (!source.view.bucket) throw new NotFoundError(`bucket ${bucket} does not exist`);
      if (ambiguous && target?.token === token) {
        return done((await this.locator.record(bucket, target))!);
      }
      if (!source.summary) throw new NotFoundError(`${bucket}/${from} does not exist`);
      moving = (await this.locator.record(bucket, source))!;
      if (!target) return done(moving);
      if (!target.view.bucket || target.view.bucket.create_revision !== source.view.bucket.create_revision) {
        return undefined;
      }
      if (target.summary && !replace) throw new ExistsError(`${bucket}/${to} already exists`);
      const snapshot = this.snapshot(bucket, source, target);
      const body = source.body ?? {};
      const plan = await this.plan(snapshot, token, (edit) => {
        if (isMarker(from)) edit.removeMarker(from);
        else edit.removeObject(from);
        this.place(edit, to, source.summary!, body, token);
      });
      const change: GarbageChange = {
        ...replacedBy(target.summary ? target.body : undefined, moving.chunks),
        rescue: moving.chunks.map((c) => c.id),
        rescueKeys: moving.chunks.length > 0 || target.body?.blob ? [[bucket, to]] : [],
        rescueDirs: [],
      };
      const result = await this.commit(plan, change, snapshot.journalEmpty, failing, () => {
        ambiguous = true;
      });
      return result && done({ ...moving!, key: to, version: Number(result.header.revision) });
    });
    return renaming.catch((err) => {
      throw ambiguous ? unknownOutcome(err, `rename of ${bucket}/${from} to ${to}`, moving) : err;
    });
  }

  /**
   * Swaps the records at two keys in one transaction. Nothing stops or
   * starts being referenced (each chunk list, inline or a blob, moves to the
   * other key whole), so the commit carries no garbage change.
   */
  async exchange(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]> {
    checkExchange(bucket, a, b);
    const token = newId();
    let ambiguous = false;
    const exchanging = this.attempts(async (failing) => {
      const [first, second] = await Promise.all([
        this.locator.locate(bucket, a, { probes: true }),
        this.locator.locate(bucket, b, { probes: true }),
      ]);
      if (!first.view.bucket) throw new NotFoundError(`bucket ${bucket} does not exist`);
      if (ambiguous && first.token === token && second.token === token) {
        const [atA, atB] = await Promise.all([this.locator.record(bucket, first), this.locator.record(bucket, second)]);
        return done([atA!, atB!] as [ObjectRecord, ObjectRecord]);
      }
      if (!first.summary) throw new NotFoundError(`${bucket}/${a} does not exist`);
      if (!second.summary) throw new NotFoundError(`${bucket}/${b} does not exist`);
      if (second.view.bucket?.create_revision !== first.view.bucket.create_revision) return undefined;
      const [recordA, recordB] = await Promise.all([
        this.locator.record(bucket, first),
        this.locator.record(bucket, second),
      ]);
      if (!recordA || !recordB) return undefined;
      const snapshot = this.snapshot(bucket, first, second);
      const plan = await this.plan(snapshot, token, (edit) => {
        this.place(edit, a, second.summary!, second.body ?? {}, token);
        this.place(edit, b, first.summary!, first.body ?? {}, token);
      });
      const change: GarbageChange = { retire: [], rescue: [], rescueKeys: [], rescueDirs: [] };
      const result = await this.commit(plan, change, snapshot.journalEmpty, failing, () => {
        ambiguous = true;
      });
      if (!result) return undefined;
      const version = Number(result.header.revision);
      return done([
        { ...recordB, key: a, version },
        { ...recordA, key: b, version },
      ] as [ObjectRecord, ObjectRecord]);
    });
    return exchanging.catch((err) => {
      throw ambiguous ? unknownOutcome(err, `exchange of ${bucket}/${a} and ${b}`) : err;
    });
  }

  async renamePrefix(
    bucket: string,
    from: string,
    to: string,
    count: (dirId: string, revision: number) => Promise<number>,
  ): Promise<number> {
    checkPrefixRename(from, to);
    const token = newId();
    let ambiguous = false;
    const renaming = this.attempts(async (failing) => {
      const [source, target] = await Promise.all([
        this.locator.locate(bucket, from, { probes: true }),
        this.locator.locate(bucket, to, { children: true, probes: true }),
      ]);
      if (!source.view.bucket) throw new NotFoundError(`bucket ${bucket} does not exist`);
      const moved = source.dirNode;
      const landed = target.dirNode;
      if (ambiguous && landed?.entry.t === token) {
        return done((await count(landed.id, target.view.revision)) + (landed.entry.m ? 1 : 0));
      }
      if (!moved) return done(0);
      const total = async (revision: number) => (await count(moved.id, revision)) + (moved.entry.m ? 1 : 0);
      if (from === to) return done(await total(source.view.revision));
      if (target.view.bucket?.create_revision !== source.view.bucket.create_revision) return undefined;
      if (landed && (target.children!.kvs.length > 0 || target.children!.more)) {
        throw new NotEmptyError(`${bucket}/${to} is not empty`);
      }
      const snapshot = this.snapshot(bucket, source, target);
      const plan = await this.plan(snapshot, token, (edit) => edit.moveDir(from, to, target.children));
      const kept = moved.entry.m ? await this.locator.chunks(moved.entry.m.b, source.view.revision) : [];
      const change: GarbageChange = {
        ...replacedBy(landed?.entry.m?.b, kept),
        rescue: [],
        rescueKeys: landed?.entry.m?.b.blob ? [[bucket, to]] : [],
        // Everything moved is referenced again: unless the queue is empty, take it back off.
        rescueDirs: snapshot.queueEmpty ? [] : [[bucket, moved.id]],
      };
      if (snapshot.queueEmpty) {
        const queue = this.keys.garbageQueue();
        const journal = this.keys.journalRange();
        plan.emptyRange(queue.key, queue.end);
        plan.emptyRange(journal.key, journal.end);
      }
      const result = await this.commit(plan, change, snapshot.journalEmpty, failing, () => {
        ambiguous = true;
      });
      return result && done(await total(Number(result.header.revision)));
    });
    return renaming.catch((err) => {
      throw ambiguous ? unknownOutcome(err, `rename of ${bucket}/${from} to ${to}`) : err;
    });
  }

  /**
   * A new key in a directory this process has read before: one transaction
   * planned on what was read then, without reading again. Its compares check
   * all of it, so a stale picture only costs this attempt (undefined: take
   * the ordinary way). Creating many files in one directory is the common case.
   */
  private async createAsLastSeen(
    draft: ObjectDraft,
    token: string,
    onAmbiguous: () => void,
  ): Promise<ObjectRecord | undefined> {
    const { bucket, key } = draft;
    const seen = this.paths.lastSeen(bucket, parentOf(key));
    if (!seen) return undefined;
    const { summary, chunks, inline } = splitRecord(draft);
    const snapshot = new Snapshot(bucket, seen.bucket);
    for (const node of seen.chain) snapshot.dirs.set(node.path, node);
    snapshot.objects.set(key, {});
    // Assumed empty: the plan then compares that it is, if it queues or rescues anything directly.
    snapshot.journalEmpty = true;
    const body = bodyOf(chunks, inline);
    const plan = await this.plan(snapshot, token, (edit) => this.place(edit, key, summary, body, token));
    const change: GarbageChange = {
      retire: [],
      rescue: chunks.map((c) => c.id),
      rescueKeys: chunks.length > 0 ? [[bucket, key]] : [],
      rescueDirs: [],
    };
    const result = await this.commit(plan, change, true, { since: undefined }, onAmbiguous).catch((err) => {
      if (err instanceof LilioError && (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT')) return undefined;
      throw err;
    });
    return result && ({ ...draft, version: Number(result.header.revision) } as ObjectRecord);
  }

  /** Writes `summary` and `body` as the record at `key`, an object's entry or a directory's marker. */
  private place(edit: TreeEdit, key: string, summary: StoredSummary, body: StoredBody, token: string): void {
    if (isMarker(key)) {
      edit.putMarker(key, { s: summary, b: body });
      return;
    }
    const { inEntry, separate } = placeBody(body);
    edit.putObject(key, { s: summary, ...(inEntry ? { b: inEntry } : {}), t: token }, separate);
  }

  private snapshot(bucket: string, ...found: Located[]): Snapshot {
    const snapshot = new Snapshot(bucket, found[0]!.view.bucket!);
    for (const located of found) this.locator.absorb(snapshot, located);
    snapshot.journalEmpty = found.every((l) => l.journalEmpty);
    snapshot.queueEmpty = found.every((l) => l.queueEmpty);
    return snapshot;
  }

  /** Plans against the snapshot, reading more of it when the plan asks for it. */
  private async plan(snapshot: Snapshot, token: string, build: (edit: TreeEdit) => void): Promise<TxnPlan> {
    for (;;) {
      const edit = new TreeEdit(this.keys, snapshot.name, snapshot, token);
      build(edit);
      try {
        return edit.finish();
      } catch (err) {
        if (!(err instanceof NeedChildren)) throw err;
        await this.locator.readChildren(snapshot, err);
      }
    }
  }

  /** The commit, or undefined when it did not apply (read again) or its answer was lost. */
  private async commit(
    plan: TxnPlan,
    change: GarbageChange,
    journalEmpty: boolean,
    failing: Failing,
    onAmbiguous: () => void,
  ): Promise<ITxnResponse | undefined> {
    const { blob, journaled } = await this.garbage.addToCommit(plan, change, journalEmpty);
    let result: ITxnResponse;
    try {
      result = await this.conn.commit(plan.request());
    } catch (err) {
      if (!(err instanceof AmbiguousCommit)) throw err;
      this.committed(plan.writtenKeys());
      onAmbiguous();
      failing.since ??= Date.now();
      if (Date.now() - failing.since >= this.conn.options.requestTimeoutMs) {
        throw new CommitUnknownError(`etcd lost the answer to a commit: ${err.failure.message}`, {
          cause: err.failure,
        });
      }
      return undefined;
    }
    failing.since = undefined;
    if (!result.succeeded) {
      if (blob) await this.blobs.discard(blob);
      return undefined;
    }
    this.committed(plan.writtenKeys());
    if (journaled) this.garbage.kick();
    return result;
  }

  /**
   * Runs attempts until one decides. A commit whose answer is lost is tried
   * again, until the cluster has failed to answer for requestTimeoutMs.
   */
  private async attempts<T>(attempt: (failing: Failing) => Promise<Outcome<T> | undefined>): Promise<T> {
    const failing: Failing = { since: undefined };
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      const outcome = await attempt(failing);
      if (outcome) return outcome.value;
    }
    throw new UnavailableError(`etcd: gave up after ${MAX_ATTEMPTS} attempts against concurrent changes`);
  }
}

/**
 * Once a commit of an operation has lost its answer, nothing that fails later
 * proves the operation did not apply (a conflict may be with its own commit,
 * applied and then replaced): the outcome is unknown, never a plain failure.
 */
function unknownOutcome(err: unknown, what: string, subject?: ObjectRecord): CommitUnknownError {
  const cause = err instanceof CommitUnknownError ? (err.cause ?? err) : err;
  return new CommitUnknownError(
    `${what}: etcd lost the answer to its commit and could not tell whether it was applied (${describeError(cause)})`,
    { cause, ...(subject ? { subject } : {}) },
  );
}

function done<T>(value: T): Outcome<T> {
  return { done: true, value };
}

/**
 * The garbage of replacing (or removing) a record whose body was `old` by one
 * referencing `kept`: the chunks dropped, or for a long list the whole blob,
 * handed to the journal, which queues it less what the new record holds.
 */
function replacedBy(old: StoredBody | undefined, kept: ChunkRef[]): Pick<GarbageChange, 'retire' | 'retireLists'> {
  if (!old) return { retire: [] };
  if (old.blob) return { retire: [], retireLists: [old.blob] };
  const now = Date.now();
  return { retire: orphanedChunks(old.chunks ?? [], kept).map((chunk) => ({ chunk, queuedAt: now })) };
}
