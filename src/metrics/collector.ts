/**
 * The seam between Lilio and its metrics. The engine, the mount and the
 * servers call a Collector; prometheus.ts implements it with prom-client,
 * noop.ts does nothing (tests, one-shot CLI commands).
 *
 * Methods take plain numbers (seconds, bytes) so that callers never build
 * label objects on hot paths.
 */
export type ObjectOperation = 'put' | 'get' | 'delete' | 'head' | 'list' | 'rename';

export interface Collector {
  /** An object operation finished (the original design's lilio_objects_total / request duration). */
  recordObjectOp(bucket: string, op: ObjectOperation, seconds: number, ok: boolean): void;
  /** Size of an object written or read (lilio_object_size_bytes). */
  recordObjectSize(bucket: string, bytes: number): void;
  /** One chunk's replicated write finished: success means at least W acknowledged. */
  recordQuorumWrite(success: boolean, attempted: number, succeeded: number): void;
  /** A replica met missing or corrupt was rewritten (or the attempt failed). */
  recordReadRepair(backend: string, ok: boolean): void;
  /** Backend became healthy (true) or unhealthy (false). */
  recordBackendHealth(backend: string, healthy: boolean): void;
  /** One call to a backend: latency and outcome. */
  recordBackendCall(backend: string, op: 'put' | 'get' | 'delete' | 'stat', seconds: number, ok: boolean): void;
  /** A replica returned bytes that failed verification. */
  recordCorruptReplica(backend: string): void;
  /** Chunk cache lookups and its current size. */
  recordCacheLookup(hit: boolean): void;
  setCacheBytes(bytes: number): void;
  /** Chunks being written right now, process-wide. */
  setChunksInFlight(count: number): void;
  /** Bytes moved between Lilio and its backends (stored form). */
  recordBackendBytes(direction: 'read' | 'written', bytes: number): void;
  /** One metadata store call. */
  recordMetaOp(op: string, seconds: number): void;
  /** One garbage collection run finished, having removed this many chunks. */
  recordGarbageCollected(chunks: number): void;
  /** Chunks waiting on the garbage queue (in or past their grace period). */
  setGarbageBacklog(count: number): void;
  /** Live sessions in the metadata store (processes using it), as of the last garbage collection run. */
  setLiveSessions(count: number): void;
  /** Scrub progress: chunks checked since the last call, and damaged (missing or corrupt) replicas among them. */
  recordScrubbed(chunks: number, damagedReplicas: number): void;
  /** A scrub pass over everything it was asked to check finished. */
  recordScrubFinished(): void;
  /** Chunks found with fewer good replicas than intended (by read, scrub or repair queue). */
  recordUnderReplicated(count: number): void;
  /** Pending repair queue length. */
  setRepairBacklog(count: number): void;
}
