import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localDir, ok, run, startMount } from '../fixtures/mount.js';
import { parseExposition } from '../fixtures/promql.js';

// `lilio mount --metrics-port` serves the FUSE and engine metrics in Prometheus' text format.

t.test('metrics after file operations', async (t) => {
  const m = await startMount(t, { metrics: true });
  t.ok(m.metricsPort, `metrics on port ${m.metricsPort}`);
  const local = localDir(t);
  const size = 3 * 1024 * 1024 + 5;
  writeFileSync(join(local, 'f.bin'), randomBytes(size));
  await ok(t, run('mkdir', [join(m.dir, 'measured')]), 'mkdir');
  await ok(t, run('cp', [join(local, 'f.bin'), join(m.dir, 'measured', 'f.bin')]), 'cp');
  await ok(t, run('cmp', [join(local, 'f.bin'), join(m.dir, 'measured', 'f.bin')]), 'cmp');
  await ok(t, run('ls', ['-l', join(m.dir, 'measured')]), 'ls -l');
  const missing = await run('cat', [join(m.dir, 'measured', 'missing')]);
  t.not(missing.code, 0, 'cat of a missing file fails');

  const base = `http://127.0.0.1:${m.metricsPort}`;
  const health = await fetch(`${base}/health`);
  t.equal(health.status, 200, '/health answers');
  const response = await fetch(`${base}/metrics`);
  t.equal(response.status, 200, '/metrics answers');
  t.match(response.headers.get('content-type') ?? '', /text\/plain/, 'in the text format');
  const text = await response.text();
  const samples = parseExposition(text);
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const sum = (name: string, labels: Record<string, string> = {}) =>
    find(name, labels).reduce((n, s) => n + s.value, 0);

  for (const needle of [
    'lilio_fuse_ops_total{op="write"}',
    'lilio_fuse_op_duration_seconds_bucket',
    'lilio_objects_total',
    'lilio_quorum_write_total{status="success"}',
    'lilio_backend_health',
    'lilio_cache_requests_total',
  ]) {
    t.ok(text.includes(needle), `the exposition has ${needle}`);
  }
  const writes = sum('lilio_fuse_ops_total', { op: 'write' });
  t.ok(writes > 0, `write calls counted (${writes})`);
  t.equal(sum('lilio_fuse_op_duration_seconds_count', { op: 'write' }), writes, 'one latency sample per write call');
  t.ok(find('lilio_fuse_op_duration_seconds_bucket', { op: 'write', le: '+Inf' }).length === 1, 'a +Inf bucket');
  // The kernel protocol session answers ls with READDIRPLUS and names with LOOKUP, which spare
  // it the GETATTR and READDIR calls libfuse's path API receives: either form counts.
  for (const ops of [
    ['getattr', 'lookup'],
    ['readdir', 'readdirplus'],
    ['mkdir'],
    ['create'],
    ['read'],
    ['flush'],
    ['release'],
  ]) {
    const calls = ops.reduce((total, op) => total + sum('lilio_fuse_ops_total', { op }), 0);
    t.ok(calls > 0, `${ops.join(' or ')} calls counted`);
  }
  t.ok(sum('lilio_fuse_bytes_total', { direction: 'written' }) >= size, 'bytes written counted');
  t.ok(sum('lilio_fuse_bytes_total', { direction: 'read' }) >= size, 'bytes read counted');
  t.ok(sum('lilio_fuse_errors_total', { errno: '2' }) > 0, 'the ENOENT was counted as an error');
  t.ok(sum('lilio_objects_total') > 0, 'object operations counted');
  t.ok(sum('lilio_quorum_write_total', { status: 'success' }) >= 4, 'every chunk reached its write quorum');
  const health3 = find('lilio_backend_health');
  t.equal(health3.length, 3, 'one health gauge per backend');
  t.ok(
    health3.every((s) => s.value === 1),
    'all healthy',
  );
  t.ok(sum('lilio_cache_requests_total') > 0, 'chunk cache lookups counted');
});
