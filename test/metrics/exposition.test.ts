import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { pattern } from '../fixtures/engine.js';
import { localDir, ok, run, startMount } from '../fixtures/mount.js';
import { startNode } from '../fixtures/node.js';
import { dashboardQueries, exportedNames, metricNames, parseExposition, type Sample } from '../fixtures/promql.js';
import { startServer } from '../fixtures/server.js';

// What real Lilio processes (a server and a mount) export on their metrics ports: the original
// design's series with its labels, the operator series, the default process metrics, and a
// dashboard that asks for nothing else.

t.test('the PromQL name extractor itself', async (t) => {
  const cases: Array<[string, string[]]> = [
    [
      'rate(lilio_object_size_bytes_sum[5m]) / rate(lilio_object_size_bytes_count[5m])',
      ['lilio_object_size_bytes_sum', 'lilio_object_size_bytes_count'],
    ],
    [
      'sum(rate(lilio_quorum_write_total{status="success"}[5m])) / sum(rate(lilio_quorum_write_total[5m]))',
      ['lilio_quorum_write_total', 'lilio_quorum_write_total'],
    ],
    ['histogram_quantile(0.95, lilio_request_duration_seconds_bucket)', ['lilio_request_duration_seconds_bucket']],
    ['histogram_quantile(0.99, sum by (le, op) (rate(a_bucket{x=~"$instance"}[$__rate_interval])))', ['a_bucket']],
    ['sum(rate(m{s="a{b}"}[1m])) by (node) / on(node) group_left(x) n', ['m', 'n']],
    ['time() - max(g > 0) offset 5m * 1e3', ['g']],
    ['up', ['up']],
  ];
  for (const [expr, names] of cases) t.same(metricNames(expr), names, expr);
});

function labelNames(samples: Sample[], name: string): string[][] {
  return samples.filter((s) => s.name === name).map((s) => Object.keys(s.labels).sort());
}

t.test("a server and a mount export the design series, the operator series and the dashboard's", async (t) => {
  const [server, mount, node] = await Promise.all([
    startServer(t),
    startMount(t, { metrics: true }),
    startNode(t, { metrics: true }),
  ]);

  // Traffic through both, so that labelled series have samples.
  t.equal((await server.fetch('/photos', { method: 'PUT' })).status, 201);
  const data = pattern(2 * 1024 * 1024 + 3, 5);
  t.equal((await server.fetch('/photos/a.bin', { method: 'PUT', body: data })).status, 200);
  t.equal((await server.fetch('/photos/a.bin', { headers: { range: 'bytes=0-9' } })).status, 206);
  t.equal((await server.fetch('/photos?delimiter=/')).status, 200);
  t.equal((await server.fetch('/photos/missing')).status, 404);
  const local = localDir(t);
  writeFileSync(join(local, 'f.bin'), data);
  await ok(t, run('mkdir', [join(mount.dir, 'docs')]), 'mkdir');
  await ok(t, run('cp', [join(local, 'f.bin'), join(mount.dir, 'docs', 'f.bin')]), 'cp');
  await ok(t, run('cmp', [join(local, 'f.bin'), join(mount.dir, 'docs', 'f.bin')]), 'cmp');

  const serverText = await (await fetch(`${server.metricsUrl}/metrics`)).text();
  const mountText = await (await fetch(`http://127.0.0.1:${mount.metricsPort}/metrics`)).text();
  const serverSamples = parseExposition(serverText);
  const mountSamples = parseExposition(mountText);
  const nodeText = await (await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`)).text();
  // `up` is Prometheus's own series for every target (the nodes row's "Nodes up").
  const exported = new Set([
    ...exportedNames(serverText),
    ...exportedNames(mountText),
    ...exportedNames(nodeText),
    'up',
  ]);

  // The mount reports object traffic as the API does: cp in is a put, cmp's read a get.
  const mountOp = (operation: string) =>
    mountSamples.find(
      (s) => s.name === 'lilio_objects_total' && s.labels.bucket === 'docs' && s.labels.operation === operation,
    )?.value ?? 0;
  t.ok(mountOp('put') >= 1, `the mount counted the cp as a put (${mountOp('put')})`);
  t.ok(mountOp('get') >= 1, `the mount counted the cmp as a get (${mountOp('get')})`);
  const mountDuration = (operation: string) =>
    mountSamples.find((s) => s.name === 'lilio_request_duration_seconds_count' && s.labels.operation === operation)
      ?.value ?? 0;
  t.ok(mountDuration('put') >= 1 && mountDuration('get') >= 1, 'put and get durations on the mount');
  const sizes = mountSamples.find((s) => s.name === 'lilio_object_size_bytes_sum' && s.labels.bucket === 'docs');
  t.ok((sizes?.value ?? 0) >= 2 * data.length, `object sizes written and read through the mount: ${sizes?.value}`);

  // The original design's six series, with its labels, in the server.
  t.same(
    labelNames(serverSamples, 'lilio_objects_total').find((l) => l.length === 2),
    ['bucket', 'operation'],
  );
  t.ok(
    serverSamples.some(
      (s) =>
        s.name === 'lilio_objects_total' &&
        s.labels.bucket === 'photos' &&
        s.labels.operation === 'put' &&
        s.value >= 1,
    ),
    'lilio_objects_total{bucket="photos",operation="put"}',
  );
  t.ok(
    labelNames(serverSamples, 'lilio_object_size_bytes_bucket').some((l) => l.join() === 'bucket,le'),
    'size histogram by bucket',
  );
  t.ok(
    serverSamples.some(
      (s) => s.name === 'lilio_object_size_bytes_sum' && s.labels.bucket === 'photos' && s.value >= data.length,
    ),
  );
  t.ok(labelNames(serverSamples, 'lilio_request_duration_seconds_bucket').some((l) => l.join() === 'le,operation'));
  t.ok(serverSamples.some((s) => s.name === 'lilio_request_duration_seconds_count' && s.labels.operation === 'get'));
  const quorum = (status: string) =>
    serverSamples.find((s) => s.name === 'lilio_quorum_write_total' && s.labels.status === status)?.value;
  t.ok((quorum('success') ?? 0) >= 3, `lilio_quorum_write_total{status="success"} = ${quorum('success')}`);
  t.equal(quorum('failure'), 0, 'status="failure" exists from the start, at 0');
  for (const samples of [serverSamples, mountSamples]) {
    const health = samples.filter((s) => s.name === 'lilio_backend_health');
    t.same(health.map((s) => s.labels.node).sort(), ['local-1', 'local-2', 'local-3'], 'lilio_backend_health{node}');
    t.ok(health.every((s) => s.value === 1));
    const repairs = samples.filter((s) => s.name === 'lilio_read_repairs_total');
    t.same(
      repairs.map((s) => s.labels.node).sort(),
      ['local-1', 'local-2', 'local-3'],
      'lilio_read_repairs_total{node} at 0',
    );
  }

  // Operator series (FUSE ones from the mount, HTTP ones from the server).
  const operator = [
    'lilio_fuse_ops_total',
    'lilio_fuse_op_duration_seconds_bucket',
    'lilio_fuse_errors_total',
    'lilio_fuse_bytes_total',
    'lilio_cache_requests_total',
    'lilio_cache_bytes',
    'lilio_chunks_in_flight',
    'lilio_backend_request_duration_seconds_bucket',
    'lilio_backend_errors_total',
    'lilio_backend_bytes_total',
    'lilio_corrupt_replicas_total',
    'lilio_under_replicated_chunks_total',
    'lilio_repair_backlog',
    'lilio_gc_chunks_deleted_total',
    'lilio_gc_runs_total',
    'lilio_garbage_backlog',
    'lilio_sessions_live',
    'lilio_scrub_chunks_checked_total',
    'lilio_scrub_damaged_replicas_total',
    'lilio_metadata_op_duration_seconds_bucket',
    'lilio_http_requests_total',
    'lilio_http_request_duration_seconds_bucket',
  ];
  for (const name of operator) t.ok(exported.has(name), name);
  t.ok(
    serverSamples.some(
      (s) =>
        s.name === 'lilio_backend_request_duration_seconds_count' &&
        s.labels.node === 'local-1' &&
        s.labels.op === 'put',
    ),
    'backend latency per backend and operation',
  );
  t.ok(
    serverSamples.some(
      (s) => s.name === 'lilio_backend_errors_total' && s.labels.node === 'local-2' && s.labels.op === 'get',
    ),
    'backend errors per backend',
  );
  t.ok(
    serverSamples.some(
      (s) =>
        s.name === 'lilio_http_requests_total' && s.labels.route === '/{bucket}/{key}' && s.labels.status === '404',
    ),
  );
  t.ok(mountSamples.some((s) => s.name === 'lilio_fuse_ops_total' && s.labels.op === 'write' && s.value > 0));
  t.ok(serverSamples.some((s) => s.name === 'lilio_metadata_op_duration_seconds_count' && s.value > 0));
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_heap_size_used_bytes',
  ]) {
    t.ok(exportedNames(serverText).has(name) && exportedNames(mountText).has(name), `default metric ${name} in both`);
  }

  // The dashboard references only what these processes export.
  const { queries, titles, variables } = dashboardQueries();
  const referenced = new Set<string>();
  for (const { panel, expr } of queries) {
    const names = metricNames(expr);
    t.ok(names.length > 0, `${panel}: reads some metric`);
    for (const name of names) {
      referenced.add(name);
      t.ok(exported.has(name), `${panel}: ${name} is exported`);
    }
  }
  for (const variable of variables) {
    const name = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),/.exec(variable)?.[1];
    t.ok(name && exported.has(name), `variable ${variable}`);
  }
  t.ok(referenced.size >= 30, `the dashboard reads ${referenced.size} different series`);
  for (const wanted of [
    /request rate per bucket/i,
    /p95 \/ p99/i,
    /quorum write success rate/i,
    /backend health/i,
    /read repairs/i,
    /fuse operations/i,
    /cache hit ratio/i,
    /nodes up/i,
    /node requests by route/i,
  ]) {
    t.ok(
      titles.some((title) => wanted.test(title)),
      `a panel for ${wanted}`,
    );
  }
});
