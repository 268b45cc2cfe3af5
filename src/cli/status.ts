import type { Command } from 'commander';
import { formatSize } from '../config/size.js';
import type { Lilio } from '../engine/lilio.js';
import { withEngine } from './context.js';
import { table } from './output.js';

export interface BackendStatus {
  name: string;
  type: string;
  location: string;
  healthy: boolean;
  latencyMs: number;
  error?: string;
  chunks?: number;
  storedBytes?: number;
  freeBytes?: number;
  totalBytes?: number;
  ringShare: number;
}

export interface BucketStatus {
  name: string;
  encrypted: boolean;
  objects: number;
  bytes: number;
}

export interface Status {
  config: string;
  quorum: { n: number; w: number; r: number; readMode: string };
  metadata: string;
  backends: BackendStatus[];
  buckets: BucketStatus[];
  garbageBacklog: number;
}

/** Gathers what `lilio status` shows: every backend probed and counted, every bucket summed. */
export async function collectStatus(lilio: Lilio): Promise<Status> {
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
        for await (const _id of backend.list()) chunks++;
        status.chunks = chunks;
      } catch (err) {
        status.error = (err as Error).message;
      }
      return status;
    }),
  );
  const buckets: BucketStatus[] = [];
  for (const bucket of await lilio.listBuckets()) {
    let objects = 0;
    let bytes = 0;
    for await (const object of lilio.meta.iterateObjects(bucket.name)) {
      if (object.kind !== 'file') continue;
      objects++;
      bytes += object.size;
    }
    buckets.push({ name: bucket.name, encrypted: bucket.encrypted, objects, bytes });
  }
  const { n, w, r, readMode } = lilio.config.quorum;
  return {
    config: lilio.config.source,
    quorum: { n, w, r, readMode },
    metadata: lilio.meta.type,
    backends,
    buckets,
    garbageBacklog: await lilio.meta.garbageCount(),
  };
}

export function renderStatus(status: Status): string {
  const { n, w, r, readMode } = status.quorum;
  const lines = [
    `config: ${status.config}   metadata: ${status.metadata}   quorum: N=${n} W=${w} R=${r} (${readMode} reads)`,
    '',
  ];
  const backendRows = [['BACKEND', 'TYPE', 'HEALTH', 'LATENCY', 'CHUNKS', 'FREE', 'RING SHARE', 'LOCATION']];
  for (const b of status.backends) {
    backendRows.push([
      b.name,
      b.type,
      b.healthy ? 'up' : `DOWN${b.error ? ` (${b.error})` : ''}`,
      b.healthy ? `${b.latencyMs} ms` : '-',
      b.chunks === undefined ? '-' : String(b.chunks),
      b.freeBytes === undefined ? '-' : `${formatSize(b.freeBytes)} / ${formatSize(b.totalBytes ?? 0)}`,
      `${(b.ringShare * 100).toFixed(1)}%`,
      b.location,
    ]);
  }
  lines.push(table(backendRows), '');
  const bucketRows = [['BUCKET', 'ENCRYPTED', 'OBJECTS', 'BYTES']];
  for (const b of status.buckets) {
    bucketRows.push([b.name, b.encrypted ? 'yes' : 'no', String(b.objects), formatSize(b.bytes)]);
  }
  lines.push(status.buckets.length ? table(bucketRows) : 'no buckets', '');
  lines.push(`garbage backlog: ${status.garbageBacklog} chunk(s) waiting for their grace period`);
  return lines.join('\n');
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('backends (health, latency, chunks, ring share), buckets and the garbage backlog')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      await withEngine(command, async (lilio) => {
        const status = await collectStatus(lilio);
        console.log(options.json ? JSON.stringify(status, null, 2) : renderStatus(status));
      });
    });
}
