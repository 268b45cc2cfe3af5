import { Counter, Histogram, type Registry } from 'prom-client';

/** What an HTTP server (the API, a storage node) reports per request. */
export interface HttpMetrics {
  /** One request answered (or abandoned by its client), by route template, method and status. */
  recordRequest(route: string, method: string, status: number, seconds: number): void;
}

export class NoopHttpMetrics implements HttpMetrics {
  recordRequest(): void {}
}

const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];
const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH']);

/**
 * prom-client series for HTTP servers. `route` is a template (/{bucket}/{key}),
 * never a path, and unknown methods collapse to OTHER, so a client cannot grow
 * the number of series.
 */
export class PrometheusHttpMetrics implements HttpMetrics {
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route' | 'method'>;

  constructor(registry: Registry, prefix = 'lilio_http') {
    const registers = [registry];
    this.requests = new Counter({
      name: `${prefix}_requests_total`,
      help: 'HTTP requests answered, by route template, method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: `${prefix}_request_duration_seconds`,
      help: 'Time from request to the last byte of the response, by route template and method.',
      labelNames: ['route', 'method'],
      buckets: HTTP_BUCKETS,
      registers,
    });
  }

  recordRequest(route: string, method: string, status: number, seconds: number): void {
    const m = METHODS.has(method) ? method : 'OTHER';
    this.requests.labels(route, m, String(status)).inc();
    this.duration.labels(route, m).observe(seconds);
  }
}
