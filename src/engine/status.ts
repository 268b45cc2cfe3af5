import type { ChunkRef } from '../core/types.js';
import type { SessionRecord } from '../meta/store.js';
import type { Lilio } from './lilio.js';

/**
 * What `lilio status` and GET /admin/stats report: every backend probed and
 * counted, every bucket summed, and the repair and garbage backlogs. The
 * repair backlog is measured, not remembered: every chunk a version
 * references is looked for on the backends its replica set names, so a
 * replica lost in a crash (which no repair queue knows of) shows up too;
 * the repair queue recorded in the metadata store is counted beside it.
 * That costs one listing per backend and memory per referenced chunk: it is
 * an operator's command, not something to poll every second on a huge store.
 */

export interface BackendStatus {
  name: string;
  type: string;
  location: string;
  healthy: boolean;
  /** Round trip of the health probe. */
  latencyMs: number;
  error?: string;
  /** Chunk files the backend holds (listed). */
  chunks?: number;
  /** Stored bytes of the referenced chunks it holds. */
  storedBytes?: number;
  /** Referenced chunks whose replica set names this backend. */
  expectedChunks: number;
  /** Of those, the ones it does not hold (repair backlog). */
  missingChunks?: number;
  /** Chunks it holds that no version references (garbage waiting, or orphans of crashed writes). */
  unreferencedChunks?: number;
  freeBytes?: number;
  totalBytes?: number;
  /** Fraction of the hash ring this backend owns. */
  ringShare: number;
}

export interface BucketInfo {
  name: string;
  encrypted: boolean;
  chunkSize: number;
  created: string;
  objects: number;
  bytes: number;
  chunks: number;
  inlineObjects: number;
}

export interface RepairBacklog {
  /** Referenced chunks with fewer replicas held than their replica set names. */
  underReplicatedChunks: number;
  /** Replicas that should exist and do not (or sit on a backend that is down). */
  missingReplicas: number;
  /** Referenced chunks with no replica found at all. */
  lostChunks: number;
  /**
   * Chunks with replicas recorded for repair in the metadata store's repair
   * queue, by any process (found missing or corrupt on read, missed by a
   * write); the next mount, server, `lilio gc` or `lilio scrub --repair` does them.
   */
  recorded: number;
  /** Repairs waiting in a long-running process's queue (servers only). */
  queued?: number;
}

export interface GcBacklog {
  /** Chunks on the garbage queue. */
  queued: number;
  /** Of those, the ones past their grace period (deleted by the next `lilio gc`); when the store can tell. */
  due?: number;
  graceSeconds: number;
}

/** A process using the store, with what it holds against gc. */
export interface SessionStatus {
  id: string;
  pid: number;
  host: string;
  role: string;
  started: string;
  expires: string;
  openFiles: number;
  heldChunks: number;
}

export interface Status {
  config: string;
  quorum: { n: number; w: number; r: number; readMode: string };
  metadata: string;
  backends: BackendStatus[];
  buckets: BucketInfo[];
  repair: RepairBacklog;
  gc: GcBacklog;
  /** Multipart uploads in progress (S3), and how long one may stay untouched before gc aborts it. */
  uploads: { open: number; expireAfterSeconds: number };
  /** Live sessions: every process that holds chunks or has used the store for writing or reading. */
  sessions: SessionStatus[];
}

/** One bucket's settings and totals (bucket info, status). */
export async function bucketInfo(lilio: Lilio, name: string, seen?: (chunk: ChunkRef) => void): Promise<BucketInfo> {
  const record = await lilio.getBucket(name);
  const info: BucketInfo = {
    name: record.name,
    encrypted: record.encrypted,
    chunkSize: record.chunkSize,
    created: new Date(record.createdAt).toISOString(),
    objects: 0,
    bytes: 0,
    chunks: 0,
    inlineObjects: 0,
  };
  for await (const object of lilio.meta.iterateObjects(name)) {
    for (const chunk of object.chunks) seen?.(chunk);
    if (object.kind !== 'file') continue;
    info.objects++;
    info.bytes += object.size;
    info.chunks += object.chunks.length;
    if (object.inline !== undefined) info.inlineObjects++;
  }
  return info;
}

interface Referenced {
  chunk: ChunkRef;
  held: number;
}

export async function collectStatus(lilio: Lilio, options: { repairQueue?: boolean } = {}): Promise<Status> {
  const referenced = new Map<string, Referenced>();
  const buckets: BucketInfo[] = [];
  for (const bucket of await lilio.listBuckets()) {
    buckets.push(
      await bucketInfo(lilio, bucket.name, (chunk) => {
        if (!referenced.has(chunk.id)) referenced.set(chunk.id, { chunk, held: 0 });
      }),
    );
  }
  const expected = new Map<string, number>();
  for (const { chunk } of referenced.values()) {
    for (const name of chunk.replicas) expected.set(name, (expected.get(name) ?? 0) + 1);
  }

  const health = await lilio.backends.probeAll();
  const shares = lilio.ring.shares();
  const backends = await Promise.all(
    lilio.backends.names.map(async (name): Promise<BackendStatus> => {
      const backend = lilio.backends.backend(name)!;
      const probe = health.get(name);
      const status: BackendStatus = {
        name,
        type: backend.type,
        location: '',
        healthy: probe?.ok ?? false,
        latencyMs: Math.round((probe?.latencyMs ?? 0) * 100) / 100,
        expectedChunks: expected.get(name) ?? 0,
        ringShare: shares.get(name) ?? 0,
      };
      if (probe?.error) status.error = probe.error;
      if (!status.healthy) return status;
      try {
        const info = await backend.info();
        status.location = info.location;
        status.freeBytes = info.freeBytes;
        status.totalBytes = info.totalBytes;
        let chunks = 0;
        let storedBytes = 0;
        let heldExpected = 0;
        let unreferenced = 0;
        for await (const id of backend.list()) {
          chunks++;
          const ref = referenced.get(id);
          if (!ref) unreferenced++;
          else if (ref.chunk.replicas.includes(name)) {
            ref.held++;
            heldExpected++;
            storedBytes += ref.chunk.storedSize;
          }
        }
        Object.assign(status, {
          chunks,
          storedBytes,
          missingChunks: status.expectedChunks - heldExpected,
          unreferencedChunks: unreferenced,
        });
      } catch (err) {
        status.error = (err as Error).message;
      }
      return status;
    }),
  );

  const repair: RepairBacklog = {
    underReplicatedChunks: 0,
    missingReplicas: 0,
    lostChunks: 0,
    recorded: await lilio.meta.repairCount(),
  };
  for (const { chunk, held } of referenced.values()) {
    if (held < chunk.replicas.length) {
      repair.underReplicatedChunks++;
      repair.missingReplicas += chunk.replicas.length - held;
    }
    if (held === 0) repair.lostChunks++;
  }
  if (options.repairQueue) repair.queued = lilio.chunks.repairs.size;

  const { n, w, r, readMode } = lilio.config.quorum;
  return {
    config: lilio.config.source,
    quorum: { n, w, r, readMode },
    metadata: lilio.meta.type,
    backends,
    buckets,
    repair,
    gc: await gcBacklog(lilio),
    uploads: { open: await lilio.meta.uploadCount(), expireAfterSeconds: lilio.config.uploads.expireAfterSeconds },
    sessions: (await lilio.meta.listSessions()).map(sessionStatus),
  };
}

function sessionStatus(session: SessionRecord): SessionStatus {
  return {
    id: session.id,
    pid: session.pid,
    host: session.host,
    role: session.role,
    started: new Date(session.startedAt).toISOString(),
    expires: new Date(session.expiresAt).toISOString(),
    openFiles: session.openFiles,
    heldChunks: session.heldChunks,
  };
}

async function gcBacklog(lilio: Lilio): Promise<GcBacklog> {
  const graceSeconds = lilio.config.gc.graceSeconds;
  const gc: GcBacklog = { queued: await lilio.meta.garbageCount(), graceSeconds };
  const peek = lilio.meta.peekGarbage?.bind(lilio.meta);
  if (!peek) return gc;
  const dueBefore = Date.now() - graceSeconds * 1000;
  let due = 0;
  for (let page = await peek(undefined, 1000); page.length > 0; page = await peek(page.at(-1)!.chunk.id, 1000)) {
    for (const entry of page) if (entry.queuedAt <= dueBefore) due++;
  }
  gc.due = due;
  return gc;
}
