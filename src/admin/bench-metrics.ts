/**
 * The engine's view of a benchmark phase, read from Prometheus metrics: the
 * process's own registry (a bench on a bucket) or a mount's /metrics (a bench
 * on a mountpoint, with --metrics-url). A snapshot before and after each
 * phase; the difference is what that phase cost the engine.
 */
export interface EngineView {
  /** Chunk writes that reached their write quorum (W replicas acknowledged). */
  chunksWritten: number;
  /** Chunk writes that did not (the write failed). */
  quorumFailures: number;
  /** Replica writes (puts to backends), and replica reads. */
  replicasWritten: number;
  replicasRead: number;
  /** Bytes written to and read from the backends, stored form, every replica. */
  backendBytesWritten: number;
  backendBytesRead: number;
  /** Mean latency of one replica put: a chunk write waits for the W-th fastest of its replicas. */
  replicaPutSeconds: number;
}

type Samples = Map<string, number>;

/** Parses the text exposition format into "name{labels}" -> value (labels as written, sorted by the client). */
export function parseMetrics(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match) samples.set(`${match[1]}${match[2] ?? ''}`, Number(match[3]));
  }
  return samples;
}

/** Sums the samples of a metric whose labels include every given label="value". */
function sum(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    const metric = brace < 0 ? key : key.slice(0, brace);
    if (metric !== name) continue;
    const labelText = brace < 0 ? '' : key.slice(brace);
    if (wanted.every((w) => labelText.includes(w))) total += value;
  }
  return total;
}

export interface Counters {
  quorumSuccess: number;
  quorumFailure: number;
  putCount: number;
  putSeconds: number;
  getCount: number;
  bytesWritten: number;
  bytesRead: number;
}

export function countersOf(samples: Samples): Counters {
  return {
    quorumSuccess: sum(samples, 'lilio_quorum_write_total', { status: 'success' }),
    quorumFailure: sum(samples, 'lilio_quorum_write_total', { status: 'failure' }),
    putCount: sum(samples, 'lilio_backend_request_duration_seconds_count', { op: 'put' }),
    putSeconds: sum(samples, 'lilio_backend_request_duration_seconds_sum', { op: 'put' }),
    getCount: sum(samples, 'lilio_backend_request_duration_seconds_count', { op: 'get' }),
    bytesWritten: sum(samples, 'lilio_backend_bytes_total', { direction: 'written' }),
    bytesRead: sum(samples, 'lilio_backend_bytes_total', { direction: 'read' }),
  };
}

export function viewBetween(before: Counters, after: Counters): EngineView {
  const puts = after.putCount - before.putCount;
  return {
    chunksWritten: after.quorumSuccess - before.quorumSuccess,
    quorumFailures: after.quorumFailure - before.quorumFailure,
    replicasWritten: puts,
    replicasRead: after.getCount - before.getCount,
    backendBytesWritten: after.bytesWritten - before.bytesWritten,
    backendBytesRead: after.bytesRead - before.bytesRead,
    replicaPutSeconds: puts > 0 ? (after.putSeconds - before.putSeconds) / puts : 0,
  };
}
