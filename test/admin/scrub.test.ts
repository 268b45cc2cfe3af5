import t, { type Test } from 'tap';
import { scrub } from '../../src/admin/scrub.js';
import type { Collector } from '../../src/metrics/collector.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;

async function engineWithData(t: Test, collector?: Collector) {
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 4096, cache: { size: 0 } }, { collector });
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('plain');
  await engine.lilio.createBucket('secret', { encrypt: true });
  const big = pattern(5 * CHUNK + 77, 1);
  const record = await engine.lilio.putObject('plain', 'big.bin', pieces(big));
  await engine.lilio.putObject('secret', 'enc.bin', pieces(pattern(2 * CHUNK, 2)));
  await engine.lilio.putObject('plain', 'tiny.txt', pieces(Buffer.from('inline, nothing to check')));
  await engine.lilio.chunks.drain();
  return { ...engine, big, record };
}

t.test('a healthy store scrubs clean, inline objects need nothing', async (t) => {
  const { lilio } = await engineWithData(t);
  const report = await scrub(lilio);
  t.match(report, {
    buckets: 2,
    objects: 3,
    inlineObjects: 1,
    chunks: 8,
    replicasChecked: 24,
    problems: { missing: 0, corrupt: 0, unreachable: 0, unknown_backend: 0 },
    underReplicated: 0,
    lost: 0,
    findings: [],
  });
  t.equal((await scrub(lilio, { bucket: 'secret' })).chunks, 2, 'one bucket only');
  await t.rejects(scrub(lilio, { bucket: 'nope' }), { code: 'NOT_FOUND' });
});

t.test('missing and corrupt replicas are found, and --repair restores them from a verified one', async (t) => {
  const { lilio, stores, record, big } = await engineWithData(t);
  const [a, b] = record.chunks;
  await stores.get(a!.replicas[0]!)!.delete(a!.id);
  const damaged = await stores.get(b!.replicas[1]!)!.get(b!.id);
  damaged[10]! ^= 0x40;
  await stores.get(b!.replicas[1]!)!.put(b!.id, damaged);

  const found = await scrub(lilio);
  t.match(found.problems, { missing: 1, corrupt: 1, unreachable: 0 });
  t.equal(found.underReplicated, 2);
  t.equal(found.lost, 0);
  t.same(
    found.findings.map((f) => [f.key, f.chunk, f.good, f.problems[0]!.kind]).sort(),
    [
      ['big.bin', a!.id, 2, 'missing'],
      ['big.bin', b!.id, 2, 'corrupt'],
    ].sort(),
  );
  t.equal(await stores.get(a!.replicas[0]!)!.stat(a!.id), undefined, 'without --repair nothing is written');

  const repaired = await scrub(lilio, { repair: true });
  t.equal(repaired.repaired, 2);
  t.equal(repaired.underReplicated, 0, 'the repaired chunks count as fully replicated');
  t.ok((await stores.get(a!.replicas[0]!)!.get(a!.id)).equals(await stores.get(a!.replicas[1]!)!.get(a!.id)));
  t.ok((await stores.get(b!.replicas[1]!)!.get(b!.id)).equals(await stores.get(b!.replicas[0]!)!.get(b!.id)));
  const after = await scrub(lilio);
  t.equal(after.findings.length, 0, 'a second scrub is clean');
  t.ok((await collect(lilio.getObject('plain', 'big.bin'))).equals(big), 'the object reads back');
});

t.test('a chunk with no replica left is lost', async (t) => {
  const { lilio, stores, record } = await engineWithData(t);
  const gone = record.chunks[0]!;
  for (const name of gone.replicas) await stores.get(name)!.delete(gone.id);
  const lost = await scrub(lilio, { repair: true });
  t.equal(lost.lost, 1);
  t.equal(lost.underReplicated, 1);
  t.equal(lost.repaired, 0, 'nothing to repair from');
});

t.test('replicas on a down backend are unreachable, not lost, and cost no wait per chunk', async (t) => {
  const { lilio, faults } = await engineWithData(t);
  faults.get('mem-2')!.down = true;
  const report = await scrub(lilio, { bucket: 'plain', repair: true });
  t.equal(report.problems.unreachable, 6, 'every chunk of big.bin has a replica on mem-2');
  t.equal(report.lost, 0, 'unreachable is not lost');
  t.equal(report.repaired, 0, 'and not rewritten');
  t.ok(
    faults.get('mem-2')!.calls.get < 6,
    `the down backend was asked ${faults.get('mem-2')!.calls.get} times, not once per chunk`,
  );
});

t.test('a replica set naming a backend that left the config is reported, not asked', async (t) => {
  const { lilio, record } = await engineWithData(t);
  const chunks = record.chunks.map((c, i) =>
    i === 0 ? { ...c, replicas: [...c.replicas.slice(0, 2), 'retired'] } : c,
  );
  const { version, ...draft } = record;
  await lilio.meta.putObject({ ...draft, chunks }, { version });
  const report = await scrub(lilio, { bucket: 'plain', repair: true });
  t.equal(report.problems.unknown_backend, 1);
  t.equal(report.underReplicated, 1, 'still under-replicated: only rebalance can place it elsewhere');
  t.match(report.findings[0]!.problems[0], { backend: 'retired', kind: 'unknown_backend' });
});

t.test('progress metrics: chunks checked, problems by kind, repairs, runs', async (t) => {
  const { PrometheusCollector } = await import('../../src/metrics/prometheus.js');
  const { PrometheusAdminMetrics } = await import('../../src/metrics/admin.js');
  const collector = new PrometheusCollector({ defaultMetrics: false });
  const { lilio, stores, record } = await engineWithData(t, collector);
  const chunk = record.chunks[3]!;
  await stores.get(chunk.replicas[2]!)!.delete(chunk.id);
  // One registry for the engine's series and the admin pass's, as `lilio scrub --metrics-port` has.
  await scrub(lilio, { repair: true, metrics: new PrometheusAdminMetrics(collector.registry) });
  const text = await collector.registry.metrics();
  t.match(text, /lilio_scrub_chunks_checked_total 8/);
  t.match(text, /lilio_scrub_damaged_replicas_total 1/);
  t.match(text, /lilio_scrub_runs_total 1/);
  t.match(text, /lilio_scrub_problems_total\{kind="missing"\} 1/);
  t.match(text, /lilio_scrub_repairs_total\{result="ok"\} 1/);
});
