import type { IKeyValue } from 'etcd3';
import { UnavailableError } from '../core/errors.js';
import { decode, type EtcdConnection } from './etcd-client.js';
import { encode, rangeEnd, successor } from './etcd-keys.js';
import { TxnPlan } from './etcd-txn.js';
import { clearRepair, mergeDone, mergeEntries, mergeRepair } from './repair-rules.js';
import type { RepairDone, RepairEntry } from './store.js';

/** Rounds of read-merge-write before giving up on a queue that other processes keep changing. */
const ATTEMPTS = 20;

/**
 * The repair queue on etcd: P/r/<chunk> holds the chunk's RepairEntry.
 * Every change reads the entries it touches and writes them back in one
 * transaction fenced on their mod revisions (absent ones on staying absent),
 * so two processes queuing or clearing one chunk at once merge instead of
 * overwriting each other; the loser reads again.
 */
export class RepairQueueKeys {
  private readonly prefix: Buffer;

  constructor(
    private readonly conn: EtcdConnection,
    root: string,
  ) {
    this.prefix = Buffer.from(`${root}/r/`, 'utf8');
  }

  async queue(entries: RepairEntry[]): Promise<void> {
    const merged = new Map(mergeEntries(entries).map((e) => [e.chunk.id, e]));
    await this.change([...merged.keys()], (chunkId, held) => mergeRepair(held, merged.get(chunkId)!));
  }

  async clear(done: RepairDone[]): Promise<void> {
    const merged = new Map(mergeDone(done).map((d) => [d.chunkId, d.backends]));
    await this.change([...merged.keys()], (chunkId, held) => held && clearRepair(held, merged.get(chunkId)!));
  }

  async peek(afterChunkId: string | undefined, limit: number): Promise<RepairEntry[]> {
    const from = afterChunkId === undefined ? this.prefix : successor(this.key(afterChunkId));
    const found = await this.conn.range({ key: from, range_end: rangeEnd(this.prefix), limit });
    return found.kvs.map((kv) => decode<RepairEntry>(kv.value, 'a repair entry'));
  }

  async count(): Promise<number> {
    const counted = await this.conn.range({ key: this.prefix, range_end: rangeEnd(this.prefix), count_only: true });
    return Number(counted.count);
  }

  /** Rewrites the entries of `chunkIds` as `next` says (undefined: none), a transaction's worth at a time. */
  private async change(
    chunkIds: string[],
    next: (chunkId: string, held: RepairEntry | undefined) => RepairEntry | undefined,
  ): Promise<void> {
    // A compare and a write per chunk; both count against the transaction's limit.
    const step = Math.max(1, Math.floor(this.conn.options.maxTxnOps / 2));
    for (let i = 0; i < chunkIds.length; i += step) await this.changeBatch(chunkIds.slice(i, i + step), next);
  }

  private async changeBatch(
    chunkIds: string[],
    next: (chunkId: string, held: RepairEntry | undefined) => RepairEntry | undefined,
  ): Promise<void> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const { responses } = await this.conn.read(chunkIds.map((id) => ({ key: this.key(id) })));
      const plan = new TxnPlan();
      chunkIds.forEach((id, i) => {
        const kv: IKeyValue | undefined = responses[i]?.kvs[0];
        const key = this.key(id);
        const held = kv && decode<RepairEntry>(kv.value, 'a repair entry');
        if (kv) plan.unchanged(key, kv.mod_revision);
        else plan.absent(key);
        const wanted = next(id, held);
        if (wanted) plan.put(key, encode(wanted));
        else if (kv) plan.delete(key);
      });
      if (plan.opCount === 0) return;
      if ((await this.conn.write(plan.request())).succeeded) return;
    }
    throw new UnavailableError('etcd: the repair queue kept changing while it was being updated');
  }

  private key(chunkId: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(chunkId, 'utf8')]);
  }
}
