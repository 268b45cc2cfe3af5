import t from 'tap';
import { pattern } from '../fixtures/engine.js';
import { startPrometheus } from '../fixtures/prometheus.js';
import { dashboardQueries, grafanaToPromql } from '../fixtures/promql.js';
import { startServer } from '../fixtures/server.js';

// Debian's real Prometheus scrapes a running `lilio server` every second while objects go in and
// out; the original design's three PromQL expressions, exactly as it wrote them, return data.

const UPLOAD_SPEED = 'rate(lilio_object_size_bytes_sum[5m]) / rate(lilio_object_size_bytes_count[5m])';
const QUORUM_SUCCESS =
  'sum(rate(lilio_quorum_write_total{status="success"}[5m])) / sum(rate(lilio_quorum_write_total[5m]))';
const P95 = 'histogram_quantile(0.95, lilio_request_duration_seconds_bucket)';

t.test("the original design's PromQL against a scraped lilio server", async (t) => {
  const server = await startServer(t);
  t.equal((await server.fetch('/photos', { method: 'PUT' })).status, 201);
  const prometheus = await startPrometheus(t, [`127.0.0.1:${server.metricsPort}`]);

  // Traffic until the queries have what they need: every object is 10-100 KiB.
  let traffic = true;
  const load = (async () => {
    for (let i = 0; traffic; i++) {
      const size = 10 * 1024 + ((i * 7919) % (90 * 1024));
      await server.fetch(`/photos/o${i % 20}`, { method: 'PUT', body: pattern(size, i + 1) });
      await (await server.fetch(`/photos/o${i % 20}`)).arrayBuffer();
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  t.teardown(async () => {
    traffic = false;
    await load;
  });

  const values = async (expr: string) => {
    const result = await prometheus.query(expr);
    t.equal(result.status, 'success', `${expr}: ${result.error ?? 'evaluates'}`);
    return (result.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  const deadline = Date.now() + 25_000;
  let speed: Awaited<ReturnType<typeof values>> = [];
  let quorum: Awaited<ReturnType<typeof values>> = [];
  let p95: Awaited<ReturnType<typeof values>> = [];
  while (Date.now() < deadline) {
    const finite = async (expr: string) => (await values(expr)).filter((r) => Number.isFinite(r.value));
    [speed, quorum, p95] = await Promise.all([finite(UPLOAD_SPEED), finite(QUORUM_SUCCESS), finite(P95)]);
    if (speed.length > 0 && quorum.length > 0 && p95.some((r) => r.metric.operation === 'get')) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  traffic = false;
  await load;

  t.ok(speed.length > 0, `${UPLOAD_SPEED} returns data`);
  for (const r of speed) {
    t.equal(r.metric.bucket, 'photos');
    t.ok(
      r.value >= 10 * 1024 && r.value <= 100 * 1024,
      `average object size ${Math.round(r.value)} B is within the sizes sent`,
    );
  }
  t.equal(quorum.length, 1, `${QUORUM_SUCCESS} returns one value`);
  t.equal(quorum[0]?.value, 1, 'every chunk write reached its quorum');
  t.ok(p95.length > 0, `${P95} returns data`);
  const operations = new Set(p95.map((r) => r.metric.operation));
  t.ok(operations.has('put') && operations.has('get'), `P95 per operation: ${[...operations].join(', ')}`);
  for (const r of p95) t.ok(r.value > 0 && r.value <= 30, `P95 of ${r.metric.operation}: ${r.value} s`);

  const up = await values('up{job="lilio"}');
  t.same(
    up.map((r) => r.value),
    [1],
    'the target is up',
  );

  // Every dashboard query is valid PromQL to this Prometheus (Grafana's variables filled in).
  const { queries } = dashboardQueries();
  for (const { panel, expr } of queries) {
    const result = await prometheus.query(grafanaToPromql(expr));
    t.equal(result.status, 'success', `${panel}: ${result.error ?? 'parses and evaluates'}`);
  }
});
