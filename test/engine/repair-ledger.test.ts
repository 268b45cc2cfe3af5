import t from 'tap';
import { UnavailableError } from '../../src/core/errors.js';
import { RepairLedger } from '../../src/engine/repair-ledger.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import type { RepairEntry } from '../../src/meta/store.js';
import { chunkRef } from '../contracts/meta-fixtures.js';

/** A memory store that counts what it is asked to queue and can fail on demand. */
class CountingStore extends MemoryMetadataStore {
  queued: RepairEntry[] = [];
  failNext = false;
  override async queueRepairs(entries: RepairEntry[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new UnavailableError('metadata store unreachable');
    }
    this.queued.push(...entries);
    await super.queueRepairs(entries);
  }
}

t.test('a repair done before the batch is written never reaches the queue; the last change wins', async (t) => {
  const store = new CountingStore();
  const ledger = new RepairLedger(store);
  const quick = chunkRef();
  const slow = chunkRef();
  ledger.record(quick, 'disk-a');
  ledger.record(slow, 'disk-a');
  ledger.record(slow, 'disk-b');
  ledger.settle(quick, 'disk-a');
  await ledger.flush();
  t.same(
    store.queued.map((e) => e.chunk.id),
    [slow.id, slow.id],
    'only the replicas still waiting were queued',
  );
  t.strictSame(
    (await store.peekRepairs(undefined, 10)).map((e) => [e.chunk.id, e.backends]),
    [[slow.id, ['disk-a', 'disk-b']]],
  );
  ledger.settle(slow, 'disk-a');
  ledger.settle(slow, 'disk-b');
  await ledger.flush();
  t.equal(await store.repairCount(), 0, 'cleared once repaired');
});

t.test('a store that fails keeps the changes buffered for the next write', async (t) => {
  const store = new CountingStore();
  const ledger = new RepairLedger(store);
  const chunk = chunkRef();
  ledger.record(chunk, 'disk-a');
  store.failNext = true;
  await t.rejects(ledger.flush(), { code: 'UNAVAILABLE' });
  t.equal(await store.repairCount(), 0);
  await ledger.flush();
  t.equal(await store.repairCount(), 1, 'written by the next flush');
});
