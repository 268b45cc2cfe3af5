import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Collector, ObjectOperation } from './collector.js';

/** Latency buckets from 100 µs to 30 s: FUSE calls and chunk writes both fall in range. */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Object sizes from 1 KiB to 16 GiB, by powers of four. */
const SIZE_BUCKETS = Array.from({ length: 13 }, (_, i) => 1024 * 4 ** i);

/**
 * The prom-client Collector. The first six series keep the original design's
 * names and labels so its PromQL works unchanged; the rest are what an
 * operator needs besides. Each instance owns its Registry, so several
 * collectors (tests, one process serving two roles) never collide.
 */
export class PrometheusCollector implements Collector {
  readonly registry: Registry;
  private readonly objects: Counter<'bucket' | 'operation'>;
  private readonly objectErrors: Counter<'bucket' | 'operation'>;
  private readonly objectSize: Histogram<'bucket'>;
  private readonly requestDuration: Histogram<'operation'>;
  private readonly quorumWrites: Counter<'status'>;
  private readonly readRepairs: Counter<'node'>;
  private readonly readRepairFailures: Counter<'node'>;
  private readonly backendHealth: Gauge<'node'>;
  private readonly backendDuration: Histogram<'node' | 'op'>;
  private readonly backendErrors: Counter<'node' | 'op'>;
  private readonly corruptReplicas: Counter<'node'>;
  private readonly cacheRequests: Counter<'result'>;
  private readonly cacheBytes: Gauge;
  private readonly chunksInFlight: Gauge;
  private readonly backendBytes: Counter<'direction'>;
  private readonly metaDuration: Histogram<'op'>;
  private readonly gcChunks: Counter;
  private readonly gcRuns: Counter;
  private readonly gcLastRun: Gauge;
  private readonly garbageBacklog: Gauge;
  private readonly liveSessions: Gauge;
  private readonly scrubChunks: Counter;
  private readonly scrubDamaged: Counter;
  private readonly scrubRuns: Counter;
  private readonly scrubLastRun: Gauge;
  private readonly underReplicated: Counter;
  private readonly repairBacklog: Gauge;
  private readonly knownBackends = new Set<string>();

  constructor(options: { defaultMetrics?: boolean; registry?: Registry } = {}) {
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.objects = new Counter({
      name: 'lilio_objects_total',
      help: 'Object operations completed, by bucket and operation.',
      labelNames: ['bucket', 'operation'],
      registers,
    });
    this.objectErrors = new Counter({
      name: 'lilio_object_errors_total',
      help: 'Object operations that failed, by bucket and operation.',
      labelNames: ['bucket', 'operation'],
      registers,
    });
    this.objectSize = new Histogram({
      name: 'lilio_object_size_bytes',
      help: 'Size of objects written and read.',
      labelNames: ['bucket'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'lilio_request_duration_seconds',
      help: 'Duration of object operations.',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.quorumWrites = new Counter({
      name: 'lilio_quorum_write_total',
      help: 'Chunk writes by quorum outcome (success: at least W replicas acknowledged).',
      labelNames: ['status'],
      registers,
    });
    this.readRepairs = new Counter({
      name: 'lilio_read_repairs_total',
      help: 'Missing or corrupt replicas rewritten by read repair, per backend.',
      labelNames: ['node'],
      registers,
    });
    this.readRepairFailures = new Counter({
      name: 'lilio_read_repair_failures_total',
      help: 'Read repairs that could not rewrite the replica, per backend.',
      labelNames: ['node'],
      registers,
    });
    this.backendHealth = new Gauge({
      name: 'lilio_backend_health',
      help: 'Backend health: 1 up, 0 down.',
      labelNames: ['node'],
      registers,
    });
    this.backendDuration = new Histogram({
      name: 'lilio_backend_request_duration_seconds',
      help: 'Latency of calls to storage backends.',
      labelNames: ['node', 'op'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.backendErrors = new Counter({
      name: 'lilio_backend_errors_total',
      help: 'Failed calls to storage backends (a missing chunk on get counts).',
      labelNames: ['node', 'op'],
      registers,
    });
    this.corruptReplicas = new Counter({
      name: 'lilio_corrupt_replicas_total',
      help: 'Replicas whose bytes failed checksum verification.',
      labelNames: ['node'],
      registers,
    });
    this.cacheRequests = new Counter({
      name: 'lilio_cache_requests_total',
      help: 'Chunk cache lookups by result (hit or miss).',
      labelNames: ['result'],
      registers,
    });
    this.cacheBytes = new Gauge({
      name: 'lilio_cache_bytes',
      help: 'Plaintext bytes held in the chunk cache.',
      registers,
    });
    this.chunksInFlight = new Gauge({
      name: 'lilio_chunks_in_flight',
      help: 'Chunks being written to backends right now.',
      registers,
    });
    this.backendBytes = new Counter({
      name: 'lilio_backend_bytes_total',
      help: 'Bytes read from and written to backends (stored form, all replicas).',
      labelNames: ['direction'],
      registers,
    });
    this.metaDuration = new Histogram({
      name: 'lilio_metadata_op_duration_seconds',
      help: 'Latency of metadata store calls.',
      labelNames: ['op'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.gcChunks = new Counter({
      name: 'lilio_gc_chunks_deleted_total',
      help: 'Unreferenced chunks deleted by garbage collection.',
      registers,
    });
    this.gcRuns = new Counter({
      name: 'lilio_gc_runs_total',
      help: 'Garbage collection runs finished.',
      registers,
    });
    this.gcLastRun = new Gauge({
      name: 'lilio_gc_last_run_timestamp_seconds',
      help: 'When the last garbage collection run finished (Unix time; 0 before the first).',
      registers,
    });
    this.garbageBacklog = new Gauge({
      name: 'lilio_garbage_backlog',
      help: 'Chunks waiting on the garbage queue, as of the last garbage collection run.',
      registers,
    });
    this.liveSessions = new Gauge({
      name: 'lilio_sessions_live',
      help: 'Live sessions in the metadata store (processes using it), as of the last garbage collection run.',
      registers,
    });
    this.scrubChunks = new Counter({
      name: 'lilio_scrub_chunks_checked_total',
      help: 'Chunks whose replicas a scrub has checked.',
      registers,
    });
    this.scrubDamaged = new Counter({
      name: 'lilio_scrub_damaged_replicas_total',
      help: 'Missing or corrupt replicas found by scrubs.',
      registers,
    });
    this.scrubRuns = new Counter({
      name: 'lilio_scrub_runs_total',
      help: 'Scrub passes finished.',
      registers,
    });
    this.scrubLastRun = new Gauge({
      name: 'lilio_scrub_last_run_timestamp_seconds',
      help: 'When the last scrub pass finished (Unix time; 0 before the first).',
      registers,
    });
    this.underReplicated = new Counter({
      name: 'lilio_under_replicated_chunks_total',
      help: 'Chunks found with fewer good replicas than their replica set names.',
      registers,
    });
    this.repairBacklog = new Gauge({
      name: 'lilio_repair_backlog',
      help: 'Replica repairs waiting to be done.',
      registers,
    });
    this.zeroKnownLabels();
  }

  private zeroKnownLabels(): void {
    for (const status of ['success', 'failure']) this.quorumWrites.labels(status).inc(0);
    for (const result of ['hit', 'miss']) this.cacheRequests.labels(result).inc(0);
    for (const direction of ['read', 'written']) this.backendBytes.labels(direction).inc(0);
  }

  /**
   * Label values known up front start at zero, so rate() and ratios work
   * before the first event: the quorum success rate has a denominator from
   * the first write, a read repair shows as a rise from 0, not as a new series.
   */
  private zeroBackend(backend: string): void {
    if (this.knownBackends.has(backend)) return;
    this.knownBackends.add(backend);
    this.readRepairs.labels(backend).inc(0);
    this.readRepairFailures.labels(backend).inc(0);
    this.corruptReplicas.labels(backend).inc(0);
    for (const op of ['put', 'get', 'delete', 'stat']) this.backendErrors.labels(backend, op).inc(0);
  }

  recordObjectOp(bucket: string, op: ObjectOperation, seconds: number, ok: boolean): void {
    if (ok) this.objects.labels(bucket, op).inc();
    else this.objectErrors.labels(bucket, op).inc();
    this.requestDuration.labels(op).observe(seconds);
  }

  recordObjectSize(bucket: string, bytes: number): void {
    this.objectSize.labels(bucket).observe(bytes);
  }

  recordQuorumWrite(success: boolean): void {
    this.quorumWrites.labels(success ? 'success' : 'failure').inc();
  }

  recordReadRepair(backend: string, ok: boolean): void {
    (ok ? this.readRepairs : this.readRepairFailures).labels(backend).inc();
  }

  recordBackendHealth(backend: string, healthy: boolean): void {
    this.zeroBackend(backend);
    this.backendHealth.labels(backend).set(healthy ? 1 : 0);
  }

  recordBackendCall(backend: string, op: 'put' | 'get' | 'delete' | 'stat', seconds: number, ok: boolean): void {
    this.backendDuration.labels(backend, op).observe(seconds);
    if (!ok) this.backendErrors.labels(backend, op).inc();
  }

  recordCorruptReplica(backend: string): void {
    this.corruptReplicas.labels(backend).inc();
  }

  recordCacheLookup(hit: boolean): void {
    this.cacheRequests.labels(hit ? 'hit' : 'miss').inc();
  }

  setCacheBytes(bytes: number): void {
    this.cacheBytes.set(bytes);
  }

  setChunksInFlight(count: number): void {
    this.chunksInFlight.set(count);
  }

  recordBackendBytes(direction: 'read' | 'written', bytes: number): void {
    this.backendBytes.labels(direction).inc(bytes);
  }

  recordMetaOp(op: string, seconds: number): void {
    this.metaDuration.labels(op).observe(seconds);
  }

  recordGarbageCollected(chunks: number): void {
    this.gcChunks.inc(chunks);
    this.gcRuns.inc();
    this.gcLastRun.set(Date.now() / 1000);
  }

  setGarbageBacklog(count: number): void {
    this.garbageBacklog.set(count);
  }

  setLiveSessions(count: number): void {
    this.liveSessions.set(count);
  }

  recordScrubbed(chunks: number, damagedReplicas: number): void {
    this.scrubChunks.inc(chunks);
    this.scrubDamaged.inc(damagedReplicas);
  }

  recordScrubFinished(): void {
    this.scrubRuns.inc();
    this.scrubLastRun.set(Date.now() / 1000);
  }

  recordUnderReplicated(count: number): void {
    this.underReplicated.inc(count);
  }

  setRepairBacklog(count: number): void {
    this.repairBacklog.set(count);
  }

  /** The text exposition format for /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
