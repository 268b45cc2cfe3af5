import { Counter, Histogram, type Registry } from 'prom-client';

/** What the S3 endpoint reports per request. */
export interface S3Metrics {
  /** One request answered (or abandoned by its client: status 499), by S3 operation and status. */
  recordRequest(operation: string, status: number, seconds: number): void;
}

export class NoopS3Metrics implements S3Metrics {
  recordRequest(): void {}
}

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];

/**
 * prom-client series for the S3 endpoint. `operation` comes from a fixed set
 * (the router's operation names), never from the request, so a client
 * cannot grow the number of series; neither label carries a key or a name.
 */
export class PrometheusS3Metrics implements S3Metrics {
  private readonly requests: Counter<'operation' | 'status'>;
  private readonly duration: Histogram<'operation'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'lilio_s3_requests_total',
      help: 'S3 requests answered, by operation and HTTP status.',
      labelNames: ['operation', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'lilio_s3_request_duration_seconds',
      help: 'Time from an S3 request to the last byte of its response, by operation.',
      labelNames: ['operation'],
      buckets: BUCKETS,
      registers,
    });
  }

  recordRequest(operation: string, status: number, seconds: number): void {
    this.requests.labels(operation, String(status)).inc();
    this.duration.labels(operation).observe(seconds);
  }
}
