import type { IKeyValue, ILeaseKeepAliveResponse } from 'etcd3';
import { NotFoundError, UnavailableError } from '../core/errors.js';
import type { ChunkRef } from '../core/types.js';
import { checkTtl } from './commit-rules.js';
import { decode, type EtcdConnection } from './etcd-client.js';
import type { GarbageQueue, HoldView, QueueEntry, ReadHoldSnapshot } from './etcd-garbage.js';
import { type EtcdKeys, encode, newId, successor } from './etcd-keys.js';
import { TxnPlan } from './etcd-txn.js';
import type { SessionInfo, SessionRecord } from './store.js';

/**
 * Sessions on etcd. A session is an etcd lease; its id is the lease id. Its
 * record (P/s/l/) and its read holds (P/s/r/) are attached to the lease, so
 * they vanish by themselves when a process dies and its lease runs out.
 *
 * Write holds must survive that (what a dead process wrote and never committed
 * has to become garbage), so they are not leased: a write hold is an entry of
 * the garbage queue, P/g/c/<chunk>, marked `heldBy` and without an age-index
 * entry, so takes never hand it out. Every commit already deletes the queue
 * entries of the chunks it references, directly or through the journal; that
 * same step ends the write hold, atomically. An index entry per hold
 * (P/s/w/<session>/<chunk>, not leased) lets the reaper find what a session
 * whose lease is gone still holds: it turns each such entry still marked
 * with that session into an ordinary queue entry, fenced on it being unchanged
 * and on the journal being empty (a journaled commit may still take it back).
 *
 * Read holds are lists of chunk ids. Every hold rewrites P/s/h, and a take
 * fences on P/s/h being as it was when it read the holds, so a chunk held
 * after that read is not handed out by that take.
 */

/** Chunk ids per read-hold value (~34 bytes each): well inside a transaction's bytes. */
const READ_PART = 16_000;

interface StoredSession extends SessionInfo {
  expiresAt: number;
  openFiles: number;
}

export class EtcdSessions implements HoldView {
  constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: EtcdKeys,
    private readonly garbage: GarbageQueue,
  ) {
    garbage.holds = this;
  }

  private get batch(): number {
    return Math.max(1, Math.floor((this.conn.options.maxTxnOps - 2) / 3));
  }

  async open(info: SessionInfo, ttlMs: number): Promise<string> {
    checkTtl(ttlMs);
    const granted = await this.conn.call((deadline) =>
      this.conn.client.leaseClient.leaseGrant({ TTL: Math.max(1, Math.ceil(ttlMs / 1000)), ID: 0 }, { deadline }),
    );
    const id = String(granted.ID);
    const plan = new TxnPlan();
    plan.put(this.keys.session(id), encode({ ...info, expiresAt: Date.now() + ttlMs, openFiles: 0 }), id);
    await this.conn.write(plan.request());
    return id;
  }

  /** etcd renews a lease by the TTL it was granted with; `ttlMs` only updates what is reported. */
  async renew(id: string, ttlMs: number, openFiles: number): Promise<boolean> {
    checkTtl(ttlMs);
    if (!(await this.keepAlive(id))) return false;
    const key = this.keys.session(id);
    const found = await this.conn.range({ key });
    const kv = found.kvs[0];
    if (!kv) return false;
    const stored = decode<StoredSession>(kv.value, `session ${id}`);
    const plan = new TxnPlan();
    plan.unchanged(key, kv.mod_revision);
    plan.put(key, encode({ ...stored, expiresAt: Date.now() + ttlMs, openFiles }), id);
    const done = await this.leased(() => this.conn.write(plan.request()));
    if (!done?.succeeded) return false;
    await this.pruneWriteIndex(id);
    return true;
  }

  async close(id: string): Promise<void> {
    await this.leased(() =>
      this.conn.call((deadline) => this.conn.client.leaseClient.leaseRevoke({ ID: id }, { deadline })),
    );
    await this.endWrites(id);
  }

  async list(): Promise<SessionRecord[]> {
    const range = this.keys.sessions();
    const [found, held] = await Promise.all([
      this.conn.range({ key: range.key, range_end: range.end }),
      this.heldBySession(),
    ]);
    const now = Date.now();
    const records: SessionRecord[] = [];
    for (const kv of found.kvs) {
      const id = kv.key.subarray(range.key.length).toString('utf8');
      const stored = decode<StoredSession>(kv.value, `session ${id}`);
      // etcd deletes it a little after expiry: what is past its time is as good as gone.
      if (stored.expiresAt <= now) continue;
      records.push({ ...stored, id, heldChunks: held.get(id)?.size ?? 0 });
    }
    return records.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1));
  }

  /** Ends the write holds of every session whose lease is gone. */
  async reap(): Promise<number> {
    const sessions = new Set<string>();
    for await (const kv of this.scan(this.keys.writeHolds())) sessions.add(this.keys.parseWriteHold(kv.key)[0]);
    let ended = 0;
    for (const id of sessions) {
      if ((await this.conn.range({ key: this.keys.session(id), keys_only: true })).kvs.length > 0) continue;
      await this.endWrites(id);
      ended++;
    }
    return ended;
  }

  async holdWrites(session: string, chunks: ChunkRef[]): Promise<void> {
    const step = Math.max(1, Math.floor((this.conn.options.maxTxnOps - 1) / 2));
    for (let i = 0; i < chunks.length; i += step) {
      const plan = new TxnPlan();
      plan.exists(this.keys.session(session));
      for (const chunk of chunks.slice(i, i + step)) {
        this.garbage.putEntry(plan, { chunk, queuedAt: 0, heldBy: session });
        plan.put(this.keys.writeHold(session, chunk.id), Buffer.alloc(0));
      }
      if (!(await this.conn.write(plan.request())).succeeded) throw expired(session);
    }
  }

  async releaseWrites(session: string, chunkIds: string[]): Promise<void> {
    for (let i = 0; i < chunkIds.length; i += this.batch) {
      const ids = chunkIds.slice(i, i + this.batch);
      for (let attempt = 0; ; attempt++) {
        const existing = await this.garbage.existing(ids);
        const plan = new TxnPlan();
        for (const id of ids) {
          plan.delete(this.keys.writeHold(session, id));
          const kv = existing.get(id);
          if (!kv || decode<QueueEntry>(kv.value, 'a garbage entry').heldBy !== session) continue;
          plan.unchanged(kv.key, kv.mod_revision);
          plan.delete(kv.key);
        }
        if ((await this.conn.write(plan.request())).succeeded) break;
        if (attempt === 10) throw new UnavailableError('etcd: write holds kept changing while being released');
      }
    }
  }

  async holdRead(session: string, chunkIds: string[]): Promise<string> {
    const hold = newId();
    for (let part = 0; part === 0 || part * READ_PART < chunkIds.length; part++) {
      const plan = new TxnPlan();
      plan.exists(this.keys.session(session));
      plan.put(
        this.keys.readHold(session, hold, part),
        encode(chunkIds.slice(part * READ_PART, (part + 1) * READ_PART)),
        session,
      );
      plan.put(this.keys.holdFence(), Buffer.from(hold));
      const result = await this.leased(() => this.conn.write(plan.request()));
      if (!result?.succeeded) throw expired(session);
    }
    return hold;
  }

  async releaseRead(session: string, hold: string): Promise<void> {
    const range = this.keys.readHoldsOf(session, hold);
    const plan = new TxnPlan();
    plan.deleteRange(range.key, range.end);
    await this.conn.write(plan.request());
  }

  async heldChunkIds(): Promise<Set<string>> {
    const held = new Set<string>();
    for (const ids of (await this.heldBySession()).values()) for (const id of ids) held.add(id);
    return held;
  }

  // ---- what the garbage queue asks ----

  async reads(): Promise<ReadHoldSnapshot> {
    const range = this.keys.readHolds();
    const { responses } = await this.conn.read([
      { key: this.keys.holdFence() },
      { key: range.key, range_end: range.end },
    ]);
    const ids = new Set<string>();
    for (const kv of responses[1]!.kvs) for (const id of decode<string[]>(kv.value, 'a read hold')) ids.add(id);
    return { ids, fence: responses[0]!.kvs[0] };
  }

  async writeHeldCount(): Promise<number> {
    let count = 0;
    for (const ids of (await this.liveWriteHolds()).values()) count += ids.length;
    return count;
  }

  // ---- internals ----

  /** One keepalive; false when the lease has expired or was revoked. */
  private async keepAlive(id: string): Promise<boolean> {
    const deadline = this.conn.deadline();
    const stream = await this.conn.call(() => this.conn.client.leaseClient.leaseKeepAlive({ deadline }));
    try {
      const answer = await new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', reject);
        stream.write({ ID: id });
      });
      return Number(answer.TTL) > 0;
    } catch (err) {
      throw this.conn.failure(err);
    } finally {
      stream.end();
    }
  }

  /** Runs a call that names a lease; undefined if etcd says the lease does not exist (any more). */
  private async leased<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (err) {
      if (/lease not found/i.test((err as Error).message ?? '')) return undefined;
      throw err;
    }
  }

  /**
   * Turns a session's remaining write holds into garbage (never committed:
   * a commit would have deleted them) and drops its index entries.
   */
  private async endWrites(session: string): Promise<void> {
    const range = this.keys.writeHolds(session);
    for (let attempt = 0; attempt < 100; ) {
      await this.garbage.drain();
      const page = await this.conn.range({ key: range.key, range_end: range.end, limit: this.batch, keys_only: true });
      if (page.kvs.length === 0) return;
      const ids = page.kvs.map((kv) => this.keys.parseWriteHold(kv.key)[1]);
      const existing = await this.garbage.existing(ids);
      const plan = new TxnPlan();
      const journal = this.keys.journalRange();
      plan.emptyRange(journal.key, journal.end);
      const now = Date.now();
      ids.forEach((id, i) => {
        plan.delete(page.kvs[i]!.key);
        const kv = existing.get(id);
        const entry = kv && decode<QueueEntry>(kv.value, 'a garbage entry');
        if (!kv || entry?.heldBy !== session) return;
        plan.unchanged(kv.key, kv.mod_revision);
        this.garbage.putEntry(plan, { chunk: entry.chunk, queuedAt: now });
      });
      if (!(await this.conn.write(plan.request())).succeeded) attempt++;
    }
    throw new UnavailableError(`etcd: the write holds of session ${session} kept changing while being released`);
  }

  /** Drops the index entries of this session's write holds that a commit has ended. */
  private async pruneWriteIndex(session: string): Promise<void> {
    const held = (await this.liveWriteHolds(session)).get(session) ?? [];
    const keep = new Set(held);
    const plan = new TxnPlan();
    for await (const kv of this.scan(this.keys.writeHolds(session))) {
      if (keep.has(this.keys.parseWriteHold(kv.key)[1])) continue;
      plan.delete(kv.key);
      if (plan.opCount >= this.conn.options.maxTxnOps) break;
    }
    if (plan.opCount > 0) await this.conn.write(plan.request());
  }

  /** Session -> chunk ids of its write holds still in place (index entries whose queue entry it still marks). */
  private async liveWriteHolds(session?: string): Promise<Map<string, string[]>> {
    const index: Array<[string, string]> = [];
    for await (const kv of this.scan(this.keys.writeHolds(session))) index.push(this.keys.parseWriteHold(kv.key));
    const live = new Map<string, string[]>();
    if (index.length === 0) return live;
    const existing = await this.garbage.existing(index.map(([, id]) => id));
    for (const [owner, id] of index) {
      const kv = existing.get(id);
      if (!kv || decode<QueueEntry>(kv.value, 'a garbage entry').heldBy !== owner) continue;
      live.set(owner, [...(live.get(owner) ?? []), id]);
    }
    return live;
  }

  private async heldBySession(): Promise<Map<string, Set<string>>> {
    const held = new Map<string, Set<string>>();
    const add = (session: string, id: string) => {
      let ids = held.get(session);
      if (!ids) held.set(session, (ids = new Set()));
      ids.add(id);
    };
    for (const [session, ids] of await this.liveWriteHolds()) for (const id of ids) add(session, id);
    const range = this.keys.readHolds();
    for await (const kv of this.scan(range, false)) {
      const session = kv.key.subarray(range.key.length).toString('utf8').split('/')[0]!;
      for (const id of decode<string[]>(kv.value, 'a read hold')) add(session, id);
    }
    return held;
  }

  private async *scan(range: { key: Buffer; end: Buffer }, keysOnly = true): AsyncGenerator<IKeyValue> {
    let from = range.key;
    for (;;) {
      const page = await this.conn.range({ key: from, range_end: range.end, limit: 1000, keys_only: keysOnly });
      yield* page.kvs;
      if (!page.more || page.kvs.length === 0) return;
      from = successor(page.kvs.at(-1)!.key);
    }
  }
}

function expired(session: string): NotFoundError {
  return new NotFoundError(`session ${session} has expired or was closed`);
}
