import { CommitUnknownError, describeError, hasCode, UnsupportedError } from '../core/errors.js';
import type { ChunkRef, ObjectDraft, ObjectRecord } from '../core/types.js';
import type { Expect, MetadataStore } from '../meta/store.js';

/**
 * The one place a commit whose answer was lost (CommitUnknownError) is
 * decided, for every writer: the engine's ObjectWriter, the mount's open
 * files, attribute changes, deletes and renames.
 *
 * The object is read back once the store answers again (retrying with
 * backoff up to `budgetMs`):
 * - the record there is the draft: the commit landed, and that is a success;
 * - it is not: the commit has not landed, and the caller gets the
 *   CommitUnknownError (EIO on the mount). The chunks written for it are not
 *   deleted but queued as garbage from now: should the transaction still land
 *   (a request held up in the network), the store's commit rule takes them
 *   off the queue again, and the grace period covers the wait;
 * - the store does not answer within the budget: nothing is decided, and
 *   nothing is queued or deleted (a version that landed may reference the
 *   chunks); if it did not land they are orphans, which the orphan pass of
 *   `lilio gc` removes.
 * So a visible version never points at a deleted chunk.
 */

export interface CommitOutcomeOptions {
  /** How long to keep trying to read the object back before leaving the outcome unknown. */
  budgetMs: number;
}

/** The first pause between read-back attempts, doubled up to MAX_PAUSE_MS. */
const FIRST_PAUSE_MS = 100;
const MAX_PAUSE_MS = 2_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class CommitOutcomes {
  constructor(
    private readonly meta: MetadataStore,
    private readonly options: CommitOutcomeOptions,
  ) {}

  /**
   * Commits a version. `fresh`: the chunks written for this commit, which
   * nothing else references (for a version built on an older one, not the
   * chunks it reuses); if the commit does not land they become garbage.
   */
  async put(
    draft: ObjectDraft,
    expect: Expect,
    fresh: readonly ChunkRef[],
    /** Told which chunks went to the garbage queue (their writer's holds may go now). */
    onQueued?: (chunks: ChunkRef[]) => Promise<void>,
  ): Promise<ObjectRecord> {
    try {
      return await this.meta.putObject(draft, expect);
    } catch (err) {
      if (!(err instanceof CommitUnknownError)) throw err;
      const current = await this.readBack(err, () => this.current(draft.bucket, draft.key));
      if (current && isDraft(current, draft)) return current;
      // The current record may reuse some (another writer read ours before replacing it): those stay.
      const kept = new Set(current?.chunks.map((c) => c.id));
      const queuedAt = Date.now();
      const garbage = fresh.filter((c) => !kept.has(c.id)).map((chunk) => ({ chunk, queuedAt }));
      let fate = `its ${garbage.length} new chunk(s) are queued as garbage, in case it still lands`;
      try {
        if (garbage.length > 0) {
          await this.meta.queueGarbage(garbage);
          await onQueued?.(garbage.map((g) => g.chunk));
        }
      } catch (queueErr) {
        fate = `its new chunks are left for the orphan pass of \`lilio gc\` (queueing them failed: ${describeError(queueErr)})`;
      }
      throw new CommitUnknownError(
        `${err.message}; read back, ${draft.bucket}/${draft.key} does not hold the new version: it is not committed (${fate})`,
        { cause: err },
      );
    }
  }

  /**
   * Completes a multipart upload (one commit: the object in, the upload out).
   * After a lost answer, the object found to be the draft means it landed;
   * otherwise the upload still owns the chunks, so nothing is queued.
   */
  async completeUpload(uploadId: string, draft: ObjectDraft, expect: Expect): Promise<ObjectRecord> {
    try {
      return await this.meta.completeUpload(uploadId, draft, expect);
    } catch (err) {
      if (!(err instanceof CommitUnknownError)) throw err;
      const current = await this.readBack(err, () => this.current(draft.bucket, draft.key));
      if (current && isDraft(current, draft)) return current;
      throw new CommitUnknownError(
        `${err.message}; read back, ${draft.bucket}/${draft.key} does not hold the completed upload: it is not committed (the upload keeps its parts)`,
        { cause: err },
      );
    }
  }

  /** Removes a record; after a lost answer, the key found empty means the delete landed. */
  async delete(bucket: string, key: string, expect?: Expect): Promise<ObjectRecord | undefined> {
    try {
      return await this.meta.deleteObject(bucket, key, expect);
    } catch (err) {
      if (!(err instanceof CommitUnknownError)) throw err;
      const current = await this.readBack(err, () => this.current(bucket, key));
      if (!current) return err.subject;
      throw new CommitUnknownError(`${err.message}; read back, ${bucket}/${key} is still there: not deleted`, {
        cause: err,
      });
    }
  }

  /** Moves a record; after a lost answer, the record found at `to` and gone from `from` means it landed. */
  async rename(bucket: string, from: string, to: string, replace: boolean): Promise<ObjectRecord> {
    try {
      return await this.meta.renameObject(bucket, from, to, { replace });
    } catch (err) {
      if (!(err instanceof CommitUnknownError)) throw err;
      const [source, target] = await this.readBack(err, () =>
        Promise.all([this.current(bucket, from), this.current(bucket, to)]),
      );
      const moved = err.subject;
      const landed = moved
        ? target?.versionId === moved.versionId && source?.versionId !== moved.versionId
        : target !== undefined && source === undefined;
      if (landed) return target!;
      throw new CommitUnknownError(`${err.message}; read back, ${bucket}/${from} was not moved to ${to}`, {
        cause: err,
      });
    }
  }

  /** Swaps two records; after a lost answer, each key holding the other's version means it landed. */
  async exchange(bucket: string, a: string, b: string): Promise<[ObjectRecord, ObjectRecord]> {
    const exchangeObjects = this.meta.exchangeObjects?.bind(this.meta);
    if (!exchangeObjects) throw new UnsupportedError(`the ${this.meta.type} metadata store cannot exchange two names`);
    const before = await Promise.all([this.current(bucket, a), this.current(bucket, b)]);
    try {
      return await exchangeObjects(bucket, a, b);
    } catch (err) {
      if (!(err instanceof CommitUnknownError)) throw err;
      const [atA, atB] = await this.readBack(err, () =>
        Promise.all([this.current(bucket, a), this.current(bucket, b)]),
      );
      const landed =
        atA !== undefined &&
        atB !== undefined &&
        atA.versionId === before[1]?.versionId &&
        atB.versionId === before[0]?.versionId;
      if (landed) return [atA, atB];
      throw new CommitUnknownError(`${err.message}; read back, ${bucket}/${a} and ${b} were not exchanged`, {
        cause: err,
      });
    }
  }

  /** Moves every key under a prefix; after a lost answer, an empty source and a filled target mean it landed. */
  async renamePrefix(bucket: string, fromPrefix: string, toPrefix: string): Promise<number> {
    try {
      return await this.meta.renamePrefix(bucket, fromPrefix, toPrefix);
    } catch (err) {
      if (!(err instanceof CommitUnknownError)) throw err;
      const [source, target] = await this.readBack(err, () =>
        Promise.all([
          this.meta.list(bucket, { prefix: fromPrefix, limit: 1 }),
          this.meta.list(bucket, { prefix: toPrefix, limit: 1 }),
        ]),
      );
      if (source.objects.length === 0 && target.objects.length > 0) return this.countUnder(bucket, toPrefix);
      throw new CommitUnknownError(`${err.message}; read back, ${bucket}/${fromPrefix} was not moved to ${toPrefix}`, {
        cause: err,
      });
    }
  }

  /**
   * Reads until the store answers, within the budget. A store that stays
   * unreachable leaves the outcome unknown: the original error, saying so.
   */
  private async readBack<T>(unknown: CommitUnknownError, read: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.options.budgetMs;
    let pause = FIRST_PAUSE_MS;
    for (;;) {
      try {
        return await read();
      } catch (err) {
        if (!retryable(err) || Date.now() + pause >= deadline) {
          throw new CommitUnknownError(
            `${unknown.message}; it could not be read back (${describeError(err)}): ` +
              'the outcome stays unknown, and its chunks are left for the orphan pass of `lilio gc` if it did not land',
            { cause: unknown },
          );
        }
        await sleep(pause);
        pause = Math.min(pause * 2, MAX_PAUSE_MS);
      }
    }
  }

  /** The record at a key; none when the bucket is gone too. */
  private async current(bucket: string, key: string): Promise<ObjectRecord | undefined> {
    try {
      return await this.meta.getObject(bucket, key);
    } catch (err) {
      if (hasCode(err, 'NOT_FOUND')) return undefined;
      throw err;
    }
  }

  private async countUnder(bucket: string, prefix: string): Promise<number> {
    let count = 0;
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.meta.list(bucket, { prefix, limit: 10_000, ...(startAfter ? { startAfter } : {}) });
      count += page.objects.length;
      if (!page.next) return count;
      startAfter = page.next;
    }
  }
}

/** Failures of a store that may answer later. */
function retryable(err: unknown): boolean {
  return hasCode(err, 'UNAVAILABLE') || hasCode(err, 'TIMEOUT');
}

/**
 * Whether a stored record is the draft committed. Not the versionId alone: a
 * change of attributes keeps the content's versionId (it authenticates inline
 * bytes), so the attributes and the chunk list must match too.
 */
export function isDraft(record: ObjectRecord, draft: ObjectDraft): boolean {
  return (
    record.versionId === draft.versionId &&
    record.size === draft.size &&
    record.committedAt === draft.committedAt &&
    sameFields(record.attrs, draft.attrs) &&
    sameFields(record.xattrs ?? {}, draft.xattrs ?? {}) &&
    record.chunks.length === draft.chunks.length &&
    record.chunks.every((c, i) => c.id === draft.chunks[i]!.id)
  );
}

/** Equal as stored: a field set to undefined is a field left out (JSON drops it). */
function sameFields(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const key of keys) if (x[key] !== y[key]) return false;
  return true;
}

/** The chunks of `draft` that `base` (the version it was built on) does not hold: those written for it. */
export function chunksNotIn(draft: ObjectDraft, base: ObjectRecord | undefined): ChunkRef[] {
  if (!base) return draft.chunks;
  const old = new Set(base.chunks.map((c) => c.id));
  return draft.chunks.filter((c) => !old.has(c.id));
}
