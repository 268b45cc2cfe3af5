import { fileURLToPath } from 'node:url';
import t from 'tap';
import { nodeStatus, startNode } from '../fixtures/node.js';
import { startPrometheus } from '../fixtures/prometheus.js';

// Debian's real Prometheus scrapes a real `lilio node` whose metrics listen beyond 127.0.0.1
// (--metrics-host 0.0.0.0): the scrape goes to 127.0.0.2, which a loopback-only listener would
// not answer. The repository's alerting rules load into the same Prometheus.

const ALERTS = fileURLToPath(new URL('../../prometheus/alerts.yml', import.meta.url));

t.test('Prometheus scrapes a storage node on --metrics-host 0.0.0.0', async (t) => {
  const node = await startNode(t, { metrics: true, args: ['--metrics-host', '0.0.0.0'] });
  const loopbackOnly = await startNode(t, { metrics: true });
  const metricsUp = async (host: string, port: number) =>
    fetch(`http://${host}:${port}/metrics`).then(
      (r) => r.ok,
      () => false,
    );
  t.ok(await metricsUp('127.0.0.2', node.metricsPort!), 'metrics answer on another address');
  t.notOk(await metricsUp('127.0.0.2', loopbackOnly.metricsPort!), 'the default listens on 127.0.0.1 only');

  // A liveness probe needs no token; the node counts it like any request.
  t.equal(await nodeStatus(node.url, '/health', undefined), 200, '/health without a token');
  t.equal(await nodeStatus(node.url, '/info', undefined), 401, 'other routes still need the token');

  const prometheus = await startPrometheus(t, [`127.0.0.2:${node.metricsPort}`], { ruleFiles: [ALERTS] });
  const deadline = Date.now() + 20_000;
  let up: number[] = [];
  let healthProbes = 0;
  while (Date.now() < deadline) {
    await nodeStatus(node.url, '/health', undefined);
    const [upResult, probes] = await Promise.all([
      prometheus.query('up{job="lilio"}'),
      prometheus.query('sum(lilio_node_requests_total{route="health", status="200"})'),
    ]);
    up = (upResult.data?.result ?? []).map((r) => Number(r.value[1]));
    healthProbes = Number(probes.data?.result[0]?.value[1] ?? 0);
    if (up[0] === 1 && healthProbes >= 2) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.same(up, [1], 'the node is up to Prometheus');
  t.ok(healthProbes >= 2, `the node's own series are scraped (${healthProbes} health probes counted)`);

  const rules = (await prometheus.api('rules')) as {
    status: string;
    data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
  };
  t.equal(rules.status, 'success');
  const loaded = rules.data.groups.flatMap((g) => g.rules);
  t.ok(loaded.length >= 5, `${loaded.length} alerting rules loaded`);
  // Rules are evaluated every second here; each must have run without an error by now.
  const ruleDeadline = Date.now() + 10_000;
  let unhealthy = loaded;
  while (Date.now() < ruleDeadline) {
    const again = (await prometheus.api('rules')) as typeof rules;
    unhealthy = again.data.groups.flatMap((g) => g.rules).filter((r) => r.health !== 'ok');
    if (unhealthy.length === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.same(
    unhealthy.map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`),
    [],
    'every rule evaluates',
  );
});
