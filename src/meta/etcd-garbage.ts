import type { IKeyValue } from 'etcd3';
import { UnavailableError } from '../core/errors.js';
import type { GarbageEntry } from '../core/types.js';
import type { BlobStore } from './etcd-blobs.js';
import { decode, type EtcdConnection, MAX_TXN_BYTES, TxnPlan } from './etcd-client.js';
import { type BlobRef, type EtcdKeys, encode, type JournalEntry, newId, successor } from './etcd-keys.js';

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
  /** Chunk ids the commit references (taken off the queue directly, when that fits). */
  rescue: string[];
  /** Where to read, when applied, the chunks to take off the queue instead. */
  rescueKeys: [string, string][];
  rescueDirs: [string, string][];
}

export interface ChunkSources {
  chunksAt(bucket: string, key: string): Promise<string[]>;
  chunksUnder(bucket: string, dirId: string): AsyncIterable<string[]>;
}

/** Journal entries carry their chunk list inline up to this size. */
const INLINE_RETIRE_BYTES = 64 * 1024;

export class GarbageQueue {
  private draining: Promise<void> | undefined;

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
    if (direct === 0 && change.rescueKeys.length === 0 && change.rescueDirs.length === 0) return { journaled: false };
    const fits =
      plan.opCount + direct <= this.maxOps &&
      plan.compareCount + 1 <= this.maxOps &&
      plan.bytes + 400 * change.retire.length + 64 * change.rescue.length < MAX_TXN_BYTES;
    if (journalEmpty && fits && change.rescueDirs.length === 0) {
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
    const keys = [...change.rescueKeys];
    if (keys.length > 0) entry.keys = keys;
    if (change.rescueDirs.length > 0) entry.dirs = change.rescueDirs;
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
    const range = this.keys.garbageQueue();
    const found = await this.conn.range({ key: range.key, range_end: range.end, count_only: true });
    return Number(found.count);
  }

  async peek(afterChunkId: string | undefined, limit: number): Promise<GarbageEntry[]> {
    await this.drain();
    const range = this.keys.garbageQueue();
    const from = afterChunkId === undefined ? range.key : successor(this.keys.garbage(afterChunkId));
    const found = await this.conn.range({ key: from, range_end: range.end, limit });
    return found.kvs.map((kv) => decode<GarbageEntry>(kv.value, 'a garbage entry'));
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
    for (let rounds = 0; taken.length < limit && rounds < 1000; rounds++) {
      await this.drain();
      const due = this.keys.garbageDueBefore(queuedBefore);
      const want = Math.min(limit - taken.length, Math.floor((this.maxOps - 1) / 2));
      const index = await this.conn.range({ key: due.key, range_end: due.end, limit: want, keys_only: true });
      if (index.kvs.length === 0) break;
      const candidates = index.kvs.map((kv) => ({ indexKey: kv.key, at: this.keys.parseGarbageByAge(kv.key) }));
      const existing = await this.existing(candidates.map((c) => c.at[1]));
      const plan = new TxnPlan();
      const journal = this.keys.journalRange();
      plan.emptyRange(journal.key, journal.end);
      const batch: GarbageEntry[] = [];
      for (const { indexKey, at } of candidates) {
        const kv = existing.get(at[1]);
        const entry = kv && decode<GarbageEntry>(kv.value, 'a garbage entry');
        plan.delete(indexKey);
        // An index entry left by a rescue, or by queuing the chunk again later, only goes.
        if (!kv || !entry || entry.queuedAt !== at[0]) continue;
        plan.unchanged(kv.key, kv.mod_revision);
        plan.delete(kv.key);
        batch.push(entry);
      }
      const result = await this.conn.write(plan.request());
      if (result.succeeded) taken.push(...batch);
    }
    return taken.sort((a, b) => a.queuedAt - b.queuedAt || (a.chunk.id < b.chunk.id ? -1 : 1));
  }

  private putEntry(plan: TxnPlan, entry: GarbageEntry): void {
    plan.put(this.keys.garbage(entry.chunk.id), encode(entry));
    plan.put(this.keys.garbageByAge(entry.queuedAt, entry.chunk.id), Buffer.alloc(0));
  }

  private async existing(chunkIds: string[]): Promise<Map<string, IKeyValue>> {
    const { responses } = await this.conn.read(chunkIds.map((id) => ({ key: this.keys.garbage(id) })));
    const found = new Map<string, IKeyValue>();
    responses.forEach((r, i) => {
      const kv = r.kvs[0];
      if (kv) found.set(chunkIds[i]!, kv);
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
    const rescued = new Set<string>();
    for (const [bucket, key] of entry.keys ?? [])
      for (const id of await this.sources.chunksAt(bucket, key)) rescued.add(id);
    for (const [bucket, dirId] of entry.dirs ?? []) {
      for await (const ids of this.sources.chunksUnder(bucket, dirId)) for (const id of ids) rescued.add(id);
    }
    const retire = entry.retire ?? (entry.retireBlob ? await this.blobs.read<GarbageEntry>(entry.retireBlob) : []);
    const targets = rescued.size > 0 ? await this.queuedIds(rescued) : [];
    if (targets.length > 0) {
      for (let i = 0; i < targets.length; i += this.maxOps) {
        const plan = fenced();
        for (const id of targets.slice(i, i + this.maxOps)) plan.delete(this.keys.garbage(id));
        if (!(await this.conn.write(plan.request())).succeeded) return;
      }
    }
    // Disjoint from what was rescued, so helpers applying the same entry at once cannot undo each other.
    const queue = latest(retire.filter((e) => !rescued.has(e.chunk.id)));
    const step = Math.floor(this.maxOps / 2);
    for (let i = 0; i < queue.length; i += step) {
      const batch = queue.slice(i, i + step);
      const existing = await this.existing(batch.map((e) => e.chunk.id));
      const plan = fenced();
      for (const e of batch) {
        const kv = existing.get(e.chunk.id);
        const queued = kv ? decode<GarbageEntry>(kv.value, 'a garbage entry').queuedAt : e.queuedAt;
        this.putEntry(plan, { chunk: e.chunk, queuedAt: Math.max(queued, e.queuedAt) });
      }
      if (!(await this.conn.write(plan.request())).succeeded) return;
    }
    const done = fenced();
    done.delete(kv.key);
    if (entry.retireBlob) this.blobs.drop(done, entry.retireBlob);
    await this.conn.write(done.request());
  }

  /** Which of `ids` are queued: by lookup when few, by reading the queue when it is the smaller. */
  private async queuedIds(ids: Set<string>): Promise<string[]> {
    const range = this.keys.garbageQueue();
    const counted = await this.conn.range({ key: range.key, range_end: range.end, count_only: true });
    const size = Number(counted.count);
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
