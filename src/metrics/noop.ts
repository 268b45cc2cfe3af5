import type { Collector } from './collector.js';

/** A Collector that records nothing: tests and one-shot CLI commands. */
export class NoopCollector implements Collector {
  recordObjectOp(): void {}
  recordObjectSize(): void {}
  recordQuorumWrite(): void {}
  recordReadRepair(): void {}
  recordBackendHealth(): void {}
  recordBackendCall(): void {}
  recordCorruptReplica(): void {}
  recordCacheLookup(): void {}
  setCacheBytes(): void {}
  setChunksInFlight(): void {}
  recordBackendBytes(): void {}
  recordMetaOp(): void {}
  recordGarbageCollected(): void {}
  setGarbageBacklog(): void {}
  setLiveSessions(): void {}
  recordScrubbed(): void {}
  recordScrubFinished(): void {}
  recordUnderReplicated(): void {}
  setRepairBacklog(): void {}
}
