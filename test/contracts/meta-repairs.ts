import type { Test } from 'tap';
import type { RepairEntry } from '../../src/meta/store.js';
import type { FreshStore } from './meta.js';
import { byteOrder, chunkRef } from './meta-fixtures.js';

/** The repair queue part of the MetadataStore contract (see meta.ts). */
export function repairContract(t: Test, fresh: FreshStore): void {
  const entry = (backends: string[], queuedAt = 1000, chunk = chunkRef()): RepairEntry => ({
    chunk,
    backends,
    queuedAt,
  });

  t.test('repairs: one entry per chunk, backends merged, the first time kept; peek pages in chunk order', async (t) => {
    const store = await fresh(t, []);
    t.equal(await store.repairCount(), 0);
    t.same(await store.peekRepairs(undefined, 10), []);
    const a = entry(['disk-b'], 2000);
    const others = Array.from({ length: 4 }, (_, i) => entry(['disk-a'], 1000 + i));
    await store.queueRepairs([a, ...others]);
    // Found missing again, and on another backend too: still one entry.
    await store.queueRepairs([entry(['disk-a', 'disk-b'], 3000, a.chunk)]);
    await store.queueRepairs([entry(['disk-b'], 1500, a.chunk), entry(['disk-c'], 4000, a.chunk)]);
    t.equal(await store.repairCount(), 5, 'five chunks, however often one was queued');
    const sorted = [a, ...others].map((e) => e.chunk.id).sort(byteOrder);
    const first = await store.peekRepairs(undefined, 3);
    const rest = await store.peekRepairs(first.at(-1)!.chunk.id, 3);
    t.same(
      [...first, ...rest].map((e) => e.chunk.id),
      sorted,
      'every chunk once, in order, over two pages',
    );
    const held = [...first, ...rest].find((e) => e.chunk.id === a.chunk.id)!;
    t.strictSame(held, { chunk: a.chunk, backends: ['disk-a', 'disk-b', 'disk-c'], queuedAt: 1500 });
    await t.rejects(store.queueRepairs([entry([])]), { code: 'INVALID' }, 'an entry must name a backend');
    t.equal(await store.repairCount(), 5, 'a refused call queues nothing');
  });

  t.test('repairs: clearing takes backends off; the entry goes with the last', async (t) => {
    const store = await fresh(t, []);
    const a = entry(['disk-a', 'disk-b']);
    const b = entry(['disk-a']);
    await store.queueRepairs([a, b]);
    await store.clearRepairs([{ chunkId: a.chunk.id, backends: ['disk-a'] }]);
    t.strictSame(
      (await store.peekRepairs(undefined, 10)).find((e) => e.chunk.id === a.chunk.id)?.backends,
      ['disk-b'],
      'the other backend still waits',
    );
    await store.clearRepairs([
      { chunkId: a.chunk.id, backends: ['disk-b', 'disk-z'] },
      { chunkId: b.chunk.id, backends: ['disk-a'] },
      { chunkId: chunkRef().id, backends: ['disk-a'] },
    ]);
    t.equal(await store.repairCount(), 0, 'both entries gone; unknown chunks and backends ignored');
    await store.queueRepairs([entry(['disk-c'], 5000, a.chunk)]);
    t.strictSame(await store.peekRepairs(undefined, 10), [entry(['disk-c'], 5000, a.chunk)], 'queued afresh');
  });

  t.test('repairs: concurrent queuings of one chunk lose no backend', async (t) => {
    const store = await fresh(t, []);
    const chunk = chunkRef();
    const names = Array.from({ length: 12 }, (_, i) => `disk-${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((name) => store.queueRepairs([entry([name], 1000, chunk)])));
    t.strictSame((await store.peekRepairs(undefined, 10))[0]?.backends, names);
    await Promise.all(names.slice(0, 6).map((name) => store.clearRepairs([{ chunkId: chunk.id, backends: [name] }])));
    t.strictSame(
      (await store.peekRepairs(undefined, 10))[0]?.backends,
      names.slice(6),
      'and no clearing undoes another',
    );
  });
}
