import { Counter, type Registry } from 'prom-client';

/** What scrub finds wrong with a replica. */
export type ReplicaProblemKind = 'missing' | 'corrupt' | 'unreachable' | 'unknown_backend';

/**
 * What the admin passes (scrub, orphan collection, rebalance) report beyond
 * the engine's Collector, for a long run watched from Prometheus. Chunks
 * scrubbed and scrub runs are the Collector's (every process exports them).
 */
export interface AdminMetrics {
  recordReplicaProblem(kind: ReplicaProblemKind): void;
  recordScrubRepair(ok: boolean): void;
  recordOrphansDeleted(count: number): void;
  recordChunkMoved(): void;
}

export class NoopAdminMetrics implements AdminMetrics {
  recordReplicaProblem(): void {}
  recordScrubRepair(): void {}
  recordOrphansDeleted(): void {}
  recordChunkMoved(): void {}
}

export class PrometheusAdminMetrics implements AdminMetrics {
  private readonly problems: Counter<'kind'>;
  private readonly repairs: Counter<'result'>;
  private readonly orphans: Counter;
  private readonly moved: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.problems = new Counter({
      name: 'lilio_scrub_problems_total',
      help: 'Replicas scrub found missing, corrupt, unreachable, or on a backend no longer configured.',
      labelNames: ['kind'],
      registers,
    });
    this.repairs = new Counter({
      name: 'lilio_scrub_repairs_total',
      help: 'Replicas scrub --repair rewrote from a verified one, by result.',
      labelNames: ['result'],
      registers,
    });
    this.orphans = new Counter({
      name: 'lilio_gc_orphans_deleted_total',
      help: 'Chunks garbage collection found on backends with no version referencing them there, and deleted.',
      registers,
    });
    this.moved = new Counter({
      name: 'lilio_rebalance_chunks_moved_total',
      help: 'Chunks rebalance moved to their ring placement.',
      registers,
    });
  }

  recordReplicaProblem(kind: ReplicaProblemKind): void {
    this.problems.labels(kind).inc();
  }

  recordScrubRepair(ok: boolean): void {
    this.repairs.labels(ok ? 'ok' : 'failed').inc();
  }

  recordOrphansDeleted(count: number): void {
    this.orphans.inc(count);
  }

  recordChunkMoved(): void {
    this.moved.inc();
  }
}
