import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the mount reports per FUSE call, besides the engine's own metrics. */
export interface FuseMetrics {
  /** One FUSE call finished; errno 0 on success. */
  recordOp(op: string, seconds: number, errno: number): void;
  recordBytes(direction: 'read' | 'written', bytes: number): void;
  setOpenFiles(count: number): void;
}

export class NoopFuseMetrics implements FuseMetrics {
  recordOp(): void {}
  recordBytes(): void {}
  setOpenFiles(): void {}
}

const FUSE_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30,
];

type Child<T> = { [op: string]: T };

/**
 * prom-client series for the mount. Label children are cached per op: the
 * write path runs this for every 128 KiB, so no label hashing there.
 */
export class PrometheusFuseMetrics implements FuseMetrics {
  private readonly ops: Counter<'op'>;
  private readonly errors: Counter<'op' | 'errno'>;
  private readonly duration: Histogram<'op'>;
  private readonly bytes: Counter<'direction'>;
  private readonly openFiles: Gauge;
  private readonly opChildren: Child<ReturnType<Counter<'op'>['labels']>> = {};
  private readonly durationChildren: Child<ReturnType<Histogram<'op'>['labels']>> = {};
  private readonly readBytes: ReturnType<Counter<'direction'>['labels']>;
  private readonly writtenBytes: ReturnType<Counter<'direction'>['labels']>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.ops = new Counter({
      name: 'lilio_fuse_ops_total',
      help: 'FUSE calls handled, by operation.',
      labelNames: ['op'],
      registers,
    });
    this.errors = new Counter({
      name: 'lilio_fuse_errors_total',
      help: 'FUSE calls answered with an error, by operation and errno.',
      labelNames: ['op', 'errno'],
      registers,
    });
    this.duration = new Histogram({
      name: 'lilio_fuse_op_duration_seconds',
      help: 'Latency of FUSE calls, by operation.',
      labelNames: ['op'],
      buckets: FUSE_BUCKETS,
      registers,
    });
    this.bytes = new Counter({
      name: 'lilio_fuse_bytes_total',
      help: 'Bytes read and written through the mount.',
      labelNames: ['direction'],
      registers,
    });
    this.openFiles = new Gauge({ name: 'lilio_fuse_open_files', help: 'Files open on the mount.', registers });
    this.readBytes = this.bytes.labels('read');
    this.writtenBytes = this.bytes.labels('written');
  }

  recordOp(op: string, seconds: number, errno: number): void {
    (this.opChildren[op] ??= this.ops.labels(op)).inc();
    (this.durationChildren[op] ??= this.duration.labels(op)).observe(seconds);
    if (errno !== 0) this.errors.labels(op, String(-errno)).inc();
  }

  recordBytes(direction: 'read' | 'written', bytes: number): void {
    (direction === 'read' ? this.readBytes : this.writtenBytes).inc(bytes);
  }

  setOpenFiles(count: number): void {
    this.openFiles.set(count);
  }
}
