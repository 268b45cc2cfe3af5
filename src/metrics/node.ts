import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The routes of a storage node, as metric labels (never the chunk id: that would be a series per chunk). */
export type NodeRoute = 'chunk' | 'list' | 'sweep' | 'health' | 'info' | 'other';

/** What a storage node (`lilio node`) reports per HTTP request. */
export interface NodeMetrics {
  /** One request answered (or abandoned: status "aborted"). */
  recordRequest(route: NodeRoute, method: string, status: string, seconds: number): void;
  /** Chunk bytes received (PUT bodies stored) and sent (GET bodies). */
  recordBytes(direction: 'received' | 'sent', bytes: number): void;
  /** Requests being handled right now. */
  setInFlight(count: number): void;
  /** A connection dropped before a request could be parsed (bad request line, headers timeout). */
  recordClientError(): void;
}

export class NoopNodeMetrics implements NodeMetrics {
  recordRequest(): void {}
  recordBytes(): void {}
  setInFlight(): void {}
  recordClientError(): void {}
}

/** From 100 µs (a HEAD on a warm disk) to 2 minutes (a 64 MiB body on a slow link). */
const NODE_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120,
];

export class PrometheusNodeMetrics implements NodeMetrics {
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route' | 'method'>;
  private readonly bytes: Counter<'direction'>;
  private readonly inFlight: Gauge;
  private readonly clientErrors: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'lilio_node_requests_total',
      help: 'Requests a storage node answered, by route, method and status (401: refused token).',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'lilio_node_request_duration_seconds',
      help: 'Time a storage node took per request, body transfer included.',
      labelNames: ['route', 'method'],
      buckets: NODE_BUCKETS,
      registers,
    });
    this.bytes = new Counter({
      name: 'lilio_node_bytes_total',
      help: 'Chunk bytes a storage node stored (received) and served (sent).',
      labelNames: ['direction'],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'lilio_node_requests_in_flight',
      help: 'Requests a storage node is handling right now.',
      registers,
    });
    this.clientErrors = new Counter({
      name: 'lilio_node_client_errors_total',
      help: 'Connections dropped before a request could be parsed (malformed, or too slow to send headers).',
      registers,
    });
  }

  recordRequest(route: NodeRoute, method: string, status: string, seconds: number): void {
    this.requests.labels(route, method, status).inc();
    this.duration.labels(route, method).observe(seconds);
  }

  recordBytes(direction: 'received' | 'sent', bytes: number): void {
    this.bytes.labels(direction).inc(bytes);
  }

  setInFlight(count: number): void {
    this.inFlight.set(count);
  }

  recordClientError(): void {
    this.clientErrors.inc();
  }
}
