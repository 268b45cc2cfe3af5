import { createHash } from 'node:crypto';
import t from 'tap';
import { HashRing, ringHash, virtualNodeKey } from '../../src/core/ring.js';

const BACKENDS = ['backend-1', 'backend-2', 'backend-3', 'backend-4'];
const CHUNKS = 100_000;

/** Deterministic stand-ins for random chunk ids, so the statistics cannot flake. */
function chunkIds(count: number): string[] {
  const ids: string[] = new Array(count);
  for (let i = 0; i < count; i++) ids[i] = createHash('sha256').update(`chunk-${i}`).digest('hex').slice(0, 32);
  return ids;
}

const ids = chunkIds(CHUNKS);

function percent(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

t.test('4 backends each hold a quarter of the chunks, within ±10%', async (t) => {
  const ring = new HashRing(BACKENDS);
  const counts = new Map<string, number>();
  for (const id of ids) {
    const [primary] = ring.place(id, 1);
    counts.set(primary!, (counts.get(primary!) ?? 0) + 1);
  }
  const quarter = CHUNKS / 4;
  const deviations = BACKENDS.map((node) => (counts.get(node) ?? 0) / quarter - 1);
  t.comment(`primary counts: ${BACKENDS.map((n) => `${n}=${counts.get(n)}`).join(' ')}`);
  t.comment(`deviation from a quarter: ${deviations.map(percent).join(' ')}`);
  for (const [i, node] of BACKENDS.entries()) {
    t.ok(Math.abs(deviations[i]!) <= 0.1, `${node} holds ${counts.get(node)} (${percent(deviations[i]!)} off)`);
  }
  const shares = ring.shares();
  const sum = [...shares.values()].reduce((a, b) => a + b, 0);
  t.ok(Math.abs(sum - 1) < 1e-9, 'shares sum to 1');
  for (const node of BACKENDS) {
    // The measured fraction of ids should track the arc each node owns.
    t.ok(Math.abs(shares.get(node)! - counts.get(node)! / CHUNKS) < 0.01, `${node} share matches its chunk count`);
  }
});

t.test('adding a 5th backend moves about a fifth of primaries; modulo hashing moves ~80%', async (t) => {
  const before = new HashRing(BACKENDS);
  const after = new HashRing(BACKENDS);
  after.addNode('backend-5');
  let moved = 0;
  let movedModulo = 0;
  for (const id of ids) {
    const oldPrimary = before.place(id, 1)[0];
    const newPrimary = after.place(id, 1)[0];
    if (oldPrimary !== newPrimary) {
      moved++;
      // Consistent hashing only ever moves a key onto the new node.
      if (newPrimary !== 'backend-5') t.fail(`${id} moved between old backends`);
    }
    const h = ringHash(id);
    if (h % 4 !== h % 5) movedModulo++;
  }
  t.comment(`consistent hashing moved ${percent(moved / CHUNKS)}, modulo moved ${percent(movedModulo / CHUNKS)}`);
  t.ok(moved / CHUNKS >= 0.15 && moved / CHUNKS <= 0.25, `moved ${percent(moved / CHUNKS)}`);
  t.ok(movedModulo / CHUNKS > 0.7, `modulo moved ${percent(movedModulo / CHUNKS)}`);
});

t.test('place returns n distinct nodes in ring order, primary first', async (t) => {
  const ring = new HashRing(BACKENDS);
  let checked = 0;
  for (const id of ids.slice(0, 2000)) {
    const all = ring.place(id, 4);
    for (let n = 1; n <= 4; n++) {
      const set = ring.place(id, n);
      if (set.length !== n || new Set(set).size !== n) return t.fail(`place(${id}, ${n}) = ${set}`);
      // A smaller replica set is a prefix of a larger one: the walk is the same.
      if (set.join() !== all.slice(0, n).join()) return t.fail(`place(${id}, ${n}) is not a prefix`);
      checked++;
    }
  }
  t.equal(checked, 8000, 'every set had n distinct nodes and extended the smaller ones');
});

t.test('n out of range throws INVALID', async (t) => {
  const ring = new HashRing(BACKENDS);
  t.throws(() => ring.place('x', 5), { code: 'INVALID' });
  t.throws(() => ring.place('x', 0), { code: 'INVALID' });
  t.throws(() => ring.place('x', 1.5), { code: 'INVALID' });
  t.throws(() => new HashRing([]).place('x', 1), { code: 'INVALID' });
});

t.test('placement depends only on the set of nodes, not the order they were added', async (t) => {
  const a = new HashRing(BACKENDS);
  const b = new HashRing([...BACKENDS].reverse());
  const c = new HashRing([]);
  for (const node of ['backend-3', 'backend-1', 'backend-4', 'backend-2']) c.addNode(node);
  const d = new HashRing([...BACKENDS, 'backend-9']);
  d.removeNode('backend-9');
  for (const id of ids.slice(0, 5000)) {
    const expected = a.place(id, 3).join();
    if (
      b.place(id, 3).join() !== expected ||
      c.place(id, 3).join() !== expected ||
      d.place(id, 3).join() !== expected
    ) {
      t.fail(`placement of ${id} differs`);
      return;
    }
  }
  t.same(c.nodes, BACKENDS, 'nodes are listed sorted');
  t.pass('identical placements');
});

t.test('positions are the first 4 bytes of SHA-256 of "node#i"', async (t) => {
  t.equal(virtualNodeKey('a', 7), 'a#7');
  t.equal(virtualNodeKey('a', 7, 2), 'a#7#retry2');
  t.equal(ringHash('a#0'), createHash('sha256').update('a#0').digest().readUInt32BE(0));
  const ring = new HashRing(['a', 'b'], 10);
  t.equal(ring.size, 20);
});

t.test('a position collision is resolved by rehashing, deterministically', async (t) => {
  // Found by a birthday search: these two virtual nodes hash to the same point.
  const winner = 'node-25147';
  const loser = 'node-49019';
  const point = ringHash(virtualNodeKey(winner, 0));
  t.equal(ringHash(virtualNodeKey(loser, 0)), point, 'the fixture really collides');
  const rehashed = ringHash(virtualNodeKey(loser, 0, 0));
  t.not(rehashed, point);
  t.not(rehashed, (point + 1) >>> 0, 'not position+1');

  // With one point each, a node's share is exactly the arc ending at its point,
  // which pins down where each point landed.
  const arc = (from: number, to: number) => ((((to - from) % 2 ** 32) + 2 ** 32) % 2 ** 32) / 2 ** 32;
  for (const order of [
    [winner, loser],
    [loser, winner],
  ]) {
    const ring = new HashRing(order, 1);
    t.equal(ring.size, 2, 'both virtual nodes are on the ring');
    const shares = ring.shares();
    t.equal(shares.get(winner), arc(rehashed, point), `${winner} (sorts first) keeps the contested point`);
    t.equal(shares.get(loser), arc(point, rehashed), `${loser} moved to its rehashed point`);
  }
});

t.test('removeNode and addNode', async (t) => {
  const ring = new HashRing(BACKENDS);
  ring.removeNode('backend-2');
  t.same(ring.nodes, ['backend-1', 'backend-3', 'backend-4']);
  t.equal(ring.size, 450);
  for (const id of ids.slice(0, 1000)) {
    if (ring.place(id, 3).includes('backend-2')) t.fail('removed node still placed');
  }
  t.throws(() => ring.place('x', 4), { code: 'INVALID' });
  t.throws(() => ring.removeNode('backend-2'), { code: 'NOT_FOUND' });
  t.throws(() => ring.addNode('backend-1'), { code: 'INVALID' }, 'duplicate');
  t.throws(() => ring.addNode(''), { code: 'INVALID' });
  t.throws(() => new HashRing(['a', 'a']), { code: 'INVALID' });
  t.throws(() => new HashRing(['a'], 0), { code: 'INVALID' });
  ring.addNode('backend-2');
  const fresh = new HashRing(BACKENDS);
  const differing = ids.slice(0, 1000).filter((id) => ring.place(id, 3).join() !== fresh.place(id, 3).join());
  t.same(differing, [], 'removing then re-adding a node restores every placement');
});
