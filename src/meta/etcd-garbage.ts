import type { IKeyValue } from 'etcd3';
import { UnavailableError } from '../core/errors.js';
import type { ChunkRef, GarbageEntry } from '../core/types.js';
import type { BlobStore } from './etcd-blobs.js';
import { decode, type EtcdConnection, MAX_TXN_BYTES } from './etcd-client.js';
import { type BlobRef, type EtcdKeys, encode, type JournalEntry, newId, successor } from './etcd-keys.js';
import { TxnPlan } from './etcd-txn.js';

/**
 * The garbage queue: P/g/c/<chunk> per queued chunk (what rescue deletes and
 * dedupe finds), P/g/t/<queuedAt>/<chunk> to hand them out oldest first.
 *
 * A commit changes the queue in its own transaction when the change is small
 * (queue what it replaced, take back what it references). When that does not
 * fit (a 100,000-chunk object replaced, or a directory moved while anything is
 * queued), the commit writes one journal entry instead, in the same
 * transaction, describing the change: the chunks to queue (inline or in a
 * blob) and the records whose chunks must come off the queue, by reference
 * (a key, or every record below a directory id) and read when the entry is
 * applied. Entries are applied in commit order, by the committing process
 * right after its commit and by anyone who needs the queue (takeGarbage and
 * friends drain it first), each step fenced on the entry still being there,
 * so a crash half way is finished by the next applier.
 *
 * While any entry waits, nothing else touches the queue: a commit that would
 * change it directly checks that the journal is empty in its transaction, and
 * otherwise journals its change too. So changes reach the queue in commit
 * order and the contract's rule holds: no chunk that a committed record
 * references stays queued once the journal has drained (a rescue by reference
 * reads the record where it is when applied; if it moved, the move's own entry,
 * later, covers it; if it was replaced, its chunks are queued by that commit's).
 */

export interface GarbageChange {
  /** Chunks the commit stops referencing. */
  retire: GarbageEntry[];
  /**
   * Whole chunk lists (blobs) of records the commit replaced or removed, read
   * only when applied: their chunks, less those the records at `rescueKeys`
   * reference then, are queued. The blobs pass to the journal entry, which
   * deletes them once applied. Always journaled.
   */
  retireLists?: BlobRef[];
  /** Chunk ids the commit references (taken off the queue directly, when that fits). */
  rescue: string[];
  /** Where to read, when applied, the chunks to take off the queue instead. */
  rescueKeys: [string, string][];
  rescueDirs: [string, string][];
  /** The same for parts of multipart uploads: [uploadId, partNumber]. */
  rescueParts?: [string, number][];
}

/** A queue entry; with `heldBy` it is a write hold of that session, not garbage (see etcd-sessions.ts). */
export interface QueueEntry extends GarbageEntry {
  heldBy?: string;
}

/** The chunks live sessions read, and the fence key as it was when they were read. */
export interface ReadHoldSnapshot {
  ids: Set<string>;
  fence: IKeyValue | undefined;
}

/** What the queue asks of the sessions (set by EtcdSessions). */
export interface HoldView {
  reads(): Promise<ReadHoldSnapshot>;
  /** Queue entries that are write holds, not garbage. */
  writeHeldCount(): Promise<number>;
}

export interface ChunkSources {
  chunksAt(bucket: string, key: string): Promise<string[]>;
  /** The chunks a recorded part holds (none once it is gone: whoever removed it queued or took them). */
  chunksOfPart(uploadId: string, partNumber: number): Promise<string[]>;
  chunksUnder(bucket: string, dirId: string): AsyncIterable<string[]>;
}

/** Journal entries carry their chunk list inline up to this size. */
const INLINE_RETIRE_BYTES = 64 * 1024;
/** Transactions a bulk step (applying a journal entry, handing out garbage) keeps in flight. */
const PARALLEL = 8;
/** Age-index keys read at once by takeGarbage. */
const INDEX_READ = 4096;

export class GarbageQueue {
  private draining: Promise<void> | undefined;
  holds: HoldView | undefined;

  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    private readonly blobs: BlobStore,
    private readonly sources: ChunkSources,
  ) {}

  private get maxOps(): number {
    return this.conn.options.maxTxnOps;
  }

  /** A read request telling whether the journal is empty (for a commit's snapshot). */
  journalProbe() {
    const range = this.keys.journalRange();
    return { key: range.key, range_end: range.end, limit: 1, keys_only: true };
  }

  queueProbe() {
    const range = this.keys.garbageQueue();
    return { key: range.key, range_end: range.end, limit: 1, keys_only: true };
  }

  /**
   * Adds `change` to a commit's plan: directly when the journal was empty and
   * it fits, else as a journal entry. Returns the blob written for it (to be
   * discarded if the commit surely fails) and whether the journal needs applying.
   */
  async addToCommit(
    plan: TxnPlan,
    change: GarbageChange,
    journalEmpty: boolean,
  ): Promise<{ blob?: BlobRef; journaled: boolean }> {
    const direct = change.rescue.length + 2 * change.retire.length;
    const lists = change.retireLists ?? [];
    const parts = change.rescueParts ?? [];
    if (
      direct === 0 &&
      lists.length === 0 &&
      change.rescueKeys.length === 0 &&
      change.rescueDirs.length === 0 &&
      parts.length === 0
    ) {
      return { journaled: false };
    }
    const fits =
      plan.opCount + direct <= this.maxOps &&
      plan.compareCount + 1 <= this.maxOps &&
      plan.bytes + 400 * change.retire.length + 64 * change.rescue.length < MAX_TXN_BYTES;
    if (journalEmpty && fits && change.rescueDirs.length === 0 && lists.length === 0) {
      const journal = this.keys.journalRange();
      plan.emptyRange(journal.key, journal.end);
      for (const id of change.rescue) plan.delete(this.keys.garbage(id));
      for (const entry of change.retire) this.putEntry(plan, entry);
      return { journaled: false };
    }
    const entry: JournalEntry = { at: Date.now() };
    let blob: BlobRef | undefined;
    if (change.retire.length > 0) {
      if (encode(change.retire).length <= INLINE_RETIRE_BYTES) entry.retire = change.retire;
      else {
        blob = await this.blobs.write(change.retire);
        entry.retireBlob = blob;
        this.blobs.adopt(plan, blob);
      }
    }
    if (lists.length > 0) entry.lists = lists;
    const keys = [...change.rescueKeys];
    if (keys.length > 0) entry.keys = keys;
    if (change.rescueDirs.length > 0) entry.dirs = change.rescueDirs;
    if (parts.length > 0) entry.parts = parts;
    plan.put(this.keys.journal(newId()), encode(entry));
    return { blob, journaled: true };
  }

  /** Applies every journal entry, oldest first. Concurrent callers share one run. */
  drain(): Promise<void> {
    this.draining ??= this.applyAll().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** Drains in the background (after a commit that journaled); failures wait for the next drain. */
  kick(): void {
    this.drain().catch(() => undefined);
  }

  async idle(): Promise<void> {
    await this.draining?.catch(() => undefined);
  }

  async count(): Promise<number> {
    await this.drain();
    const size = await this.queueSize();
    return size === 0 ? 0 : size - ((await this.holds?.writeHeldCount()) ?? 0);
  }

  /** Garbage entries in chunk id order; write holds (entries with `heldBy`) are not garbage and left out. */
  async peek(afterChunkId: string | undefined, limit: number): Promise<GarbageEntry[]> {
    await this.drain();
    const range = this.keys.garbageQueue();
    let from = afterChunkId === undefined ? range.key : successor(this.keys.garbage(afterChunkId));
    const entries: GarbageEntry[] = [];
    for (;;) {
      const found = await this.conn.range({ key: from, range_end: range.end, limit: limit - entries.length });
      for (const kv of found.kvs) {
        const { heldBy, ...entry } = decode<QueueEntry>(kv.value, 'a garbage entry');
        if (heldBy === undefined) entries.push(entry);
      }
      if (!found.more || found.kvs.length === 0 || entries.length >= limit) return entries;
      from = successor(found.kvs.at(-1)!.key);
    }
  }

  async queue(entries: GarbageEntry[]): Promise<void> {
    if (entries.length === 0) return;
    for (let attempt = 0; attempt < 20; attempt++) {
      await this.drain();
      const plan = new TxnPlan();
      const journal = this.keys.journalRange();
      let blob: BlobRef | undefined;
      if (3 * entries.length + 2 <= this.maxOps) {
        // Queued twice keeps the later time: reaping early is the one unsafe mistake.
        const existing = await this.existing(entries.map((e) => e.chunk.id));
        plan.emptyRange(journal.key, journal.end);
        for (const entry of latest(entries)) {
          const kv = existing.get(entry.chunk.id);
          if (kv) plan.unchanged(kv.key, kv.mod_revision);
          else plan.absent(this.keys.garbage(entry.chunk.id));
          const queued = kv ? decode<GarbageEntry>(kv.value, 'a garbage entry').queuedAt : entry.queuedAt;
          this.putEntry(plan, { chunk: entry.chunk, queuedAt: Math.max(queued, entry.queuedAt) });
        }
      } else {
        // Too many for one transaction: one journal entry keeps it all-or-nothing.
        ({ blob } = await this.addToCommit(
          plan,
          { retire: entries, rescue: [], rescueKeys: [], rescueDirs: [] },
          false,
        ));
      }
      const result = await this.conn.write(plan.request());
      if (result.succeeded) {
        await this.drain();
        return;
      }
      if (blob) await this.blobs.discard(blob);
    }
    throw new UnavailableError('etcd: the garbage queue kept changing while chunks were being queued');
  }

  /** Hands out (and removes) up to `limit` entries queued before `queuedBefore`, oldest first. */
  async take(queuedBefore: number, limit: number): Promise<GarbageEntry[]> {
    const taken: GarbageEntry[] = [];
    const due = this.keys.garbageDueBefore(queuedBefore);
    // Onwards from what this call already went through: deleted keys stay in etcd's index
    // until compaction, and would otherwise be walked over again on every round.
    let from = due.key;
    for (let rounds = 0; taken.length < limit && rounds < 1000; rounds++) {
      await this.drain();
      const index = await this.conn.range({
        key: from,
        range_end: due.end,
        limit: Math.min(limit - taken.length, INDEX_READ),
        keys_only: true,
      });
      if (index.kvs.length === 0) break;
      const held = (await this.holds?.reads()) ?? { ids: new Set<string>(), fence: undefined };
      const batches: IKeyValue[][] = [];
      for (let i = 0; i < index.kvs.length; i += this.takeBatch) batches.push(index.kvs.slice(i, i + this.takeBatch));
      let retry: Buffer | undefined;
      await inParallel(batches, PARALLEL, async (batch) => {
        const got = await this.takeBatchOf(batch, held);
        if (got) taken.push(...got);
        else if (!retry || Buffer.compare(batch[0]!.key, retry) < 0) retry = batch[0]!.key;
      });
      // A batch that lost a race with a commit is read again from its first key.
      from = retry ?? successor(index.kvs.at(-1)!.key);
    }
    return taken.sort((a, b) => a.queuedAt - b.queuedAt || (a.chunk.id < b.chunk.id ? -1 : 1));
  }

  private get takeBatch(): number {
    return Math.floor((this.maxOps - 1) / 2);
  }

  /**
   * Takes the entries behind some age-index keys in one transaction; undefined
   * if it lost a race. Chunks that live sessions read stay queued, and the
   * transaction is fenced on the read holds not having changed since `held` was
   * read: a hold placed meanwhile makes it read them again.
   */
  private async takeBatchOf(indexKeys: IKeyValue[], held: ReadHoldSnapshot): Promise<GarbageEntry[] | undefined> {
    const candidates = indexKeys.map((kv) => ({ indexKey: kv.key, at: this.keys.parseGarbageByAge(kv.key) }));
    const existing = await this.existing(candidates.map((c) => c.at[1]));
    const plan = new TxnPlan();
    const journal = this.keys.journalRange();
    plan.emptyRange(journal.key, journal.end);
    if (held.fence) plan.unchanged(held.fence.key, held.fence.mod_revision);
    else plan.absent(this.keys.holdFence());
    const batch: GarbageEntry[] = [];
    for (const { indexKey, at } of candidates) {
      if (held.ids.has(at[1])) continue;
      const kv = existing.get(at[1]);
      const entry = kv && decode<QueueEntry>(kv.value, 'a garbage entry');
      plan.delete(indexKey);
      // An index entry left by a rescue, or by queuing the chunk again later, only goes (a write
      // hold has no index entry of its own; one left from before the hold is such a leftover).
      if (!kv || !entry || entry.queuedAt !== at[0] || entry.heldBy !== undefined) continue;
      plan.unchanged(kv.key, kv.mod_revision);
      plan.delete(kv.key);
      batch.push(entry);
    }
    const result = await this.conn.write(plan.request());
    return result.succeeded ? batch : undefined;
  }

  putEntry(plan: TxnPlan, entry: QueueEntry): void {
    if (entry.heldBy !== undefined) {
      // A write hold: no age-index entry, so takes never come across it.
      plan.put(this.keys.garbage(entry.chunk.id), encode(entry));
      return;
    }
    plan.put(this.keys.garbage(entry.chunk.id), encode(entry));
    plan.put(this.keys.garbageByAge(entry.queuedAt, entry.chunk.id), Buffer.alloc(0));
  }

  /** The queue entries of some chunks (those queued), read a transaction's worth at a time, several at once. */
  async existing(chunkIds: string[]): Promise<Map<string, IKeyValue>> {
    const found = new Map<string, IKeyValue>();
    const batches: string[][] = [];
    for (let i = 0; i < chunkIds.length; i += this.maxOps) batches.push(chunkIds.slice(i, i + this.maxOps));
    await inParallel(batches, PARALLEL, async (ids) => {
      const { responses } = await this.conn.read(ids.map((id) => ({ key: this.keys.garbage(id) })));
      responses.forEach((r, i) => {
        const kv = r.kvs[0];
        if (kv) found.set(ids[i]!, kv);
      });
    });
    return found;
  }

  private async applyAll(): Promise<void> {
    const range = this.keys.journalRange();
    for (;;) {
      const oldest = await this.conn.range({
        key: range.key,
        range_end: range.end,
        sort_target: 'Create',
        sort_order: 'Ascend',
        limit: 1,
      });
      const kv = oldest.kvs[0];
      if (!kv) return;
      await this.apply(kv);
    }
  }

  /** Applies one journal entry; every step is fenced on the entry still existing. */
  private async apply(kv: IKeyValue): Promise<void> {
    const entry = decode<JournalEntry>(kv.value, 'a garbage journal entry');
    const fenced = () => {
      const plan = new TxnPlan();
      plan.created(kv.key, kv.create_revision);
      return plan;
    };
    const retire = entry.retire ?? (entry.retireBlob ? await this.blobs.read<GarbageEntry>(entry.retireBlob) : []);
    for (const list of entry.lists ?? []) {
      for (const chunk of await this.blobs.read<ChunkRef>(list)) retire.push({ chunk, queuedAt: entry.at });
    }
    // What to take back is read only when there is something to take it from.
    const rescued = new Set<string>();
    if (retire.length > 0 || (await this.queueSize()) > 0) {
      for (const [bucket, key] of entry.keys ?? []) {
        for (const id of await this.sources.chunksAt(bucket, key)) rescued.add(id);
      }
      for (const [bucket, dirId] of entry.dirs ?? []) {
        for await (const ids of this.sources.chunksUnder(bucket, dirId)) for (const id of ids) rescued.add(id);
      }
      for (const [uploadId, partNumber] of entry.parts ?? []) {
        for (const id of await this.sources.chunksOfPart(uploadId, partNumber)) rescued.add(id);
      }
    }
    let fenceHeld = true;
    const targets = rescued.size > 0 ? await this.queuedIds(rescued) : [];
    const rescues: string[][] = [];
    for (let i = 0; i < targets.length; i += this.maxOps) rescues.push(targets.slice(i, i + this.maxOps));
    await inParallel(rescues, PARALLEL, async (ids) => {
      const plan = fenced();
      for (const id of ids) plan.delete(this.keys.garbage(id));
      if (!(await this.conn.write(plan.request())).succeeded) fenceHeld = false;
    });
    if (!fenceHeld) return;
    // Disjoint from what was rescued, so helpers applying the same entry at once cannot undo each other.
    const queue = latest(retire.filter((e) => !rescued.has(e.chunk.id)));
    const step = Math.floor(this.maxOps / 2);
    const retires: GarbageEntry[][] = [];
    for (let i = 0; i < queue.length; i += step) retires.push(queue.slice(i, i + step));
    await inParallel(retires, PARALLEL, async (batch) => {
      if (!fenceHeld) return;
      const existing = await this.existing(batch.map((e) => e.chunk.id));
      const plan = fenced();
      for (const e of batch) {
        const kv = existing.get(e.chunk.id);
        const queued = kv ? decode<GarbageEntry>(kv.value, 'a garbage entry').queuedAt : e.queuedAt;
        this.putEntry(plan, { chunk: e.chunk, queuedAt: Math.max(queued, e.queuedAt) });
      }
      if (!(await this.conn.write(plan.request())).succeeded) fenceHeld = false;
    });
    if (!fenceHeld) return;
    const done = fenced();
    done.delete(kv.key);
    if (entry.retireBlob) this.blobs.drop(done, entry.retireBlob);
    for (const list of entry.lists ?? []) this.blobs.drop(done, list);
    await this.conn.write(done.request());
  }

  /** Which of `ids` are queued: by lookup when few, by reading the queue when it is the smaller. */
  private async queueSize(): Promise<number> {
    const range = this.keys.garbageQueue();
    const counted = await this.conn.range({ key: range.key, range_end: range.end, count_only: true });
    return Number(counted.count);
  }

  private async queuedIds(ids: Set<string>): Promise<string[]> {
    const range = this.keys.garbageQueue();
    const size = await this.queueSize();
    if (size === 0) return [];
    if (ids.size <= size) return [...(await this.existing([...ids])).keys()];
    const queued: string[] = [];
    let from = range.key;
    for (;;) {
      const page = await this.conn.range({ key: from, range_end: range.end, limit: 10_000, keys_only: true });
      for (const kv of page.kvs) {
        const id = this.keys.garbageChunkOf(kv.key);
        if (ids.has(id)) queued.push(id);
      }
      if (!page.more || page.kvs.length === 0) return queued;
      from = successor(page.kvs.at(-1)!.key);
    }
  }
}

/** One entry per chunk, the latest queuing winning. */
function latest(entries: GarbageEntry[]): GarbageEntry[] {
  const byChunk = new Map<string, GarbageEntry>();
  for (const entry of entries) {
    const seen = byChunk.get(entry.chunk.id);
    if (!seen || entry.queuedAt > seen.queuedAt) byChunk.set(entry.chunk.id, entry);
  }
  return [...byChunk.values()];
}

/** Runs `work` over `items`, at most `concurrency` at a time; the first failure is thrown once all settle. */
async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure !== undefined) throw failure;
}
