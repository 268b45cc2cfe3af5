import type { IKeyValue } from 'etcd3';
import {
  CommitUnknownError,
  describeError,
  ExistsError,
  FileTooBigError,
  NoSuchUploadError,
  NotFoundError,
  UnavailableError,
} from '../core/errors.js';
import type { ObjectDraft, PartRecord, UploadRecord } from '../core/types.js';
import { batchLimit, orphanedChunks, pageLimit } from './commit-rules.js';
import type { BlobStore } from './etcd-blobs.js';
import { AmbiguousCommit, decode, type EtcdConnection, MAX_TXN_BYTES } from './etcd-client.js';
import type { GarbageQueue } from './etcd-garbage.js';
import { type EtcdKeys, encode, newId, rangeEnd, successor } from './etcd-keys.js';
import type { CommitRider } from './etcd-objects.js';
import { TxnPlan } from './etcd-txn.js';
import type { PartPage, UploadListOptions, UploadPage } from './store.js';
import { checkPartNumber, compareUploads, completionGarbage, uploadListed } from './upload-rules.js';

/**
 * Multipart uploads on etcd: P/u/<upload> holds the UploadRecord, P/v/<upload>/<part>
 * each PartRecord with its chunk list (and the token of the commit that wrote it).
 *
 * Every change to an upload's parts rewrites its record (touchedAt), so one
 * compare on the record's mod revision fences a transaction against any
 * change to the upload or its parts: completion and abort read the parts,
 * then commit only if nothing moved. Garbage goes through GarbageQueue as
 * object commits' does; a part's chunks are rescued directly when that fits
 * the transaction, or by reference to the part through the journal.
 *
 * Listing a bucket's uploads reads every upload record (uploads in progress
 * are few: they are aborted by expiry), and a part's chunk list must fit one
 * value (~4,000 chunks: 4 GiB at the default chunk size).
 */

/** A stored part: the record and the token of its commit. */
type StoredPart = PartRecord & { t: string };

const ATTEMPTS = 32;
/** Parts read per request when all of an upload's are needed. */
const PART_READ = 100;

export class EtcdUploads {
  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    private readonly garbage: GarbageQueue,
    private readonly blobs: BlobStore,
    private readonly changed: () => void,
  ) {}

  async create(upload: UploadRecord): Promise<void> {
    const key = this.keys.upload(upload.id);
    const bucketKey = this.keys.bucket(upload.bucket);
    for (let ambiguous = false; ; ) {
      const plan = new TxnPlan();
      plan.exists(bucketKey);
      plan.absent(key);
      plan.put(key, encode(upload));
      try {
        if ((await this.conn.commit(plan.request())).succeeded) break;
      } catch (err) {
        if (!(err instanceof AmbiguousCommit)) throw err;
        ambiguous = true;
        continue;
      }
      const { responses } = await this.conn.read([{ key: bucketKey, keys_only: true }, { key }]);
      if (responses[0]!.kvs.length === 0) throw new NotFoundError(`bucket ${upload.bucket} does not exist`);
      const found = responses[1]!.kvs[0];
      // After a lost answer, our own record found there means ours landed.
      if (ambiguous && found?.value.equals(encode(upload))) break;
      throw new ExistsError(`upload ${upload.id} already exists`);
    }
    this.changed();
  }

  async get(id: string): Promise<UploadRecord | undefined> {
    const kv = (await this.conn.range({ key: this.keys.upload(id) })).kvs[0];
    return kv && decode<UploadRecord>(kv.value, `upload ${id}`);
  }

  async list(bucket: string, options: UploadListOptions): Promise<UploadPage> {
    const limit = pageLimit(options.limit);
    const { responses } = await this.conn.read([{ key: this.keys.bucket(bucket), keys_only: true }]);
    if (responses[0]!.kvs.length === 0) throw new NotFoundError(`bucket ${bucket} does not exist`);
    const listed = (await this.all())
      .filter((u) => u.bucket === bucket && uploadListed(u, options))
      .sort(compareUploads);
    return { uploads: listed.slice(0, limit), truncated: listed.length > limit };
  }

  async stale(touchedBefore: number, limit: number): Promise<UploadRecord[]> {
    batchLimit(limit);
    const stale = (await this.all()).filter((u) => u.touchedAt < touchedBefore);
    return stale.sort((a, b) => a.touchedAt - b.touchedAt).slice(0, limit);
  }

  async count(): Promise<number> {
    const range = this.keys.uploads();
    return Number((await this.conn.range({ key: range.key, range_end: range.end, count_only: true })).count);
  }

  async putPart(part: PartRecord): Promise<void> {
    checkPartNumber(part.partNumber);
    const token = newId();
    const stored: StoredPart = { ...part, t: token };
    const value = encode(stored);
    if (value.length > MAX_TXN_BYTES / 2) {
      throw new FileTooBigError(
        `part ${part.partNumber} has too many chunks (${part.chunks.length}) for one etcd value`,
      );
    }
    const uploadKey = this.keys.upload(part.uploadId);
    const partKey = this.keys.part(part.uploadId, part.partNumber);
    await this.attempts(`part ${part.partNumber} of upload ${part.uploadId}`, async (ambiguous) => {
      const { responses } = await this.conn.read([{ key: uploadKey }, { key: partKey }, this.garbage.journalProbe()]);
      const uploadKv = responses[0]!.kvs[0];
      const partKv = responses[1]!.kvs[0];
      const old = partKv && decode<StoredPart>(partKv.value, `part ${part.partNumber}`);
      if (ambiguous && old?.t === token) return true;
      if (!uploadKv)
        throw new NoSuchUploadError(`upload ${part.uploadId} does not exist (completed, aborted or expired?)`);
      const upload = decode<UploadRecord>(uploadKv.value, `upload ${part.uploadId}`);
      const plan = new TxnPlan();
      plan.unchanged(uploadKey, uploadKv.mod_revision);
      plan.put(uploadKey, encode({ ...upload, touchedAt: part.uploadedAt }));
      if (partKv) plan.unchanged(partKey, partKv.mod_revision);
      else plan.absent(partKey);
      plan.put(partKey, value);
      const queuedAt = Date.now();
      const retire = old ? orphanedChunks(old.chunks, part.chunks).map((chunk) => ({ chunk, queuedAt })) : [];
      return this.commit(plan, {
        retire,
        rescue: part.chunks.map((c) => c.id),
        rescueKeys: [],
        rescueDirs: [],
        rescueParts: part.chunks.length > 0 ? [[part.uploadId, part.partNumber]] : [],
        journalEmpty: responses[2]!.kvs.length === 0,
      });
    });
  }

  async listParts(uploadId: string, options: { after?: number; limit?: number }): Promise<PartPage> {
    const limit = pageLimit(options.limit);
    const range = this.keys.parts(uploadId);
    const from = successor(this.keys.part(uploadId, options.after ?? 0));
    const { responses } = await this.conn.read([
      { key: this.keys.upload(uploadId), keys_only: true },
      { key: from, range_end: range.end, limit: Math.min(limit + 1, PART_READ) },
    ]);
    if (responses[0]!.kvs.length === 0) {
      throw new NoSuchUploadError(`upload ${uploadId} does not exist (completed, aborted or expired?)`);
    }
    const parts = responses[1]!.kvs.map((kv) => partOf(kv));
    // Longer pages are read on at the same revision, a bounded number of parts per response.
    let more = responses[1]!.more;
    while (more && parts.length <= limit) {
      const next = await this.conn.range({
        key: successor(this.keys.part(uploadId, parts.at(-1)!.partNumber)),
        range_end: range.end,
        limit: Math.min(limit + 1 - parts.length, PART_READ),
      });
      parts.push(...next.kvs.map((kv) => partOf(kv)));
      more = next.more;
    }
    return { parts: parts.slice(0, limit), truncated: parts.length > limit };
  }

  /** The rider of a completion's object commit (ObjectCommits.put): the upload goes in the same transaction. */
  completion(uploadId: string, draft: ObjectDraft): CommitRider {
    return async (plan) => {
      const { uploadKv, parts } = await this.readWhole(uploadId);
      const garbage = completionGarbage(decode<UploadRecord>(uploadKv.value, `upload ${uploadId}`), draft, parts);
      this.remove(plan, uploadId, uploadKv);
      const queuedAt = Date.now();
      return garbage.map((chunk) => ({ chunk, queuedAt }));
    };
  }

  async abort(uploadId: string): Promise<void> {
    await this.attempts(`abort of upload ${uploadId}`, async (ambiguous) => {
      let whole: Awaited<ReturnType<EtcdUploads['readWhole']>>;
      try {
        whole = await this.readWhole(uploadId);
      } catch (err) {
        // Gone after a commit whose answer was lost: that was this abort.
        if (ambiguous && err instanceof NoSuchUploadError) return true;
        throw err;
      }
      const plan = new TxnPlan();
      this.remove(plan, uploadId, whole.uploadKv);
      const queuedAt = Date.now();
      return this.commit(plan, {
        retire: whole.parts.flatMap((p) => p.chunks.map((chunk) => ({ chunk, queuedAt }))),
        rescue: [],
        rescueKeys: [],
        rescueDirs: [],
        journalEmpty: whole.journalEmpty,
      });
    });
  }

  /** The chunk ids of a recorded part, for the garbage journal's rescue by reference. */
  async chunksOfPart(uploadId: string, partNumber: number): Promise<string[]> {
    const kv = (await this.conn.range({ key: this.keys.part(uploadId, partNumber) })).kvs[0];
    return kv ? partOf(kv).chunks.map((c) => c.id) : [];
  }

  private remove(plan: TxnPlan, uploadId: string, uploadKv: IKeyValue): void {
    const uploadKey = this.keys.upload(uploadId);
    const parts = this.keys.parts(uploadId);
    plan.unchanged(uploadKey, uploadKv.mod_revision);
    plan.delete(uploadKey);
    plan.deleteRange(parts.key, parts.end);
  }

  /** An upload and all its parts at one revision; NoSuchUploadError if it is gone. */
  private async readWhole(
    uploadId: string,
  ): Promise<{ uploadKv: IKeyValue; parts: PartRecord[]; journalEmpty: boolean }> {
    const range = this.keys.parts(uploadId);
    const { responses, revision } = await this.conn.read([
      { key: this.keys.upload(uploadId) },
      { key: range.key, range_end: range.end, limit: PART_READ },
      this.garbage.journalProbe(),
    ]);
    const uploadKv = responses[0]!.kvs[0];
    if (!uploadKv) throw new NoSuchUploadError(`upload ${uploadId} does not exist (completed, aborted or expired?)`);
    const parts = responses[1]!.kvs.map((kv) => partOf(kv));
    for (let more = responses[1]!.more; more; ) {
      const next = await this.conn.range({
        key: successor(this.keys.part(uploadId, parts.at(-1)!.partNumber)),
        range_end: range.end,
        limit: PART_READ,
        revision,
      });
      parts.push(...next.kvs.map((kv) => partOf(kv)));
      more = next.more && next.kvs.length > 0;
    }
    return { uploadKv, parts, journalEmpty: responses[2]!.kvs.length === 0 };
  }

  private async all(): Promise<UploadRecord[]> {
    const range = this.keys.uploads();
    const uploads: UploadRecord[] = [];
    let from = range.key;
    for (;;) {
      const page = await this.conn.range({ key: from, range_end: rangeEnd(range.key), limit: 1000 });
      for (const kv of page.kvs) uploads.push(decode<UploadRecord>(kv.value, 'an upload'));
      if (!page.more || page.kvs.length === 0) return uploads;
      from = successor(page.kvs.at(-1)!.key);
    }
  }

  /** Adds the garbage change and commits; true when applied, false to read again. */
  private async commit(
    plan: TxnPlan,
    change: Parameters<GarbageQueue['addToCommit']>[1] & { journalEmpty: boolean },
  ): Promise<boolean> {
    const { journalEmpty, ...garbage } = change;
    const { blob, journaled } = await this.garbage.addToCommit(plan, garbage, journalEmpty);
    const result = await this.conn.commit(plan.request());
    if (!result.succeeded) {
      if (blob) await this.blobs.discard(blob);
      return false;
    }
    this.changed();
    if (journaled) this.garbage.kick();
    return true;
  }

  /**
   * Runs attempts until one applies; after a lost answer the next is told so
   * (to recognise its own commit), and a failure after one is CommitUnknownError:
   * the lost commit may have applied, so its chunks must not be deleted.
   */
  private async attempts(what: string, attempt: (ambiguous: boolean) => Promise<boolean>): Promise<void> {
    const deadline = this.conn.deadline();
    let ambiguous = false;
    try {
      for (let n = 0; n < ATTEMPTS; n++) {
        try {
          if (await attempt(ambiguous)) return;
        } catch (err) {
          if (!(err instanceof AmbiguousCommit)) throw err;
          this.changed();
          ambiguous = true;
          if (Date.now() >= deadline) throw err.failure;
        }
      }
      throw new UnavailableError(`etcd: ${what} gave up after ${ATTEMPTS} attempts against concurrent changes`);
    } catch (err) {
      if (!ambiguous) throw err;
      throw new CommitUnknownError(
        `${what}: etcd lost the answer to its commit and could not tell whether it was applied (${describeError(err)})`,
        { cause: err },
      );
    }
  }
}

function partOf(kv: IKeyValue): PartRecord {
  const { t: _token, ...part } = decode<StoredPart>(kv.value, 'a part');
  return part;
}
