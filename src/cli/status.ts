import type { Command } from 'commander';
import { formatSize } from '../config/size.js';
import type { Status } from '../engine/status.js';
import { table } from './output.js';
import { withTarget } from './target.js';

const orDash = (value: number | undefined, show: (n: number) => string = String) =>
  value === undefined ? '-' : show(value);

/** The human form of `lilio status`: a header line, then backends, buckets and backlogs as aligned tables. */
export function renderStatus(status: Status & { server?: Record<string, unknown> }): string {
  const { n, w, r, readMode } = status.quorum;
  const lines = [
    `config: ${status.config}   metadata: ${status.metadata}   quorum: N=${n} W=${w} R=${r} (${readMode} reads)`,
  ];
  if (status.server) {
    const s = status.server;
    lines.push(`server: pid ${s.pid}, up ${s.uptimeSeconds} s, ${s.activeRequests} request(s) in progress`);
  }
  lines.push('');
  const backendRows = [
    [
      'BACKEND',
      'TYPE',
      'HEALTH',
      'LATENCY',
      'CHUNKS',
      'STORED',
      'MISSING',
      'UNREFERENCED',
      'FREE',
      'RING SHARE',
      'LOCATION',
    ],
  ];
  for (const b of status.backends) {
    backendRows.push([
      b.name,
      b.type,
      b.healthy ? 'up' : 'DOWN',
      b.healthy ? `${b.latencyMs.toFixed(2)} ms` : '-',
      orDash(b.chunks),
      orDash(b.storedBytes, formatSize),
      orDash(b.missingChunks),
      orDash(b.unreferencedChunks),
      b.freeBytes === undefined ? '-' : `${formatSize(b.freeBytes)} of ${formatSize(b.totalBytes ?? 0)}`,
      `${(b.ringShare * 100).toFixed(1)}%`,
      b.location || (b.error ? `(${b.error})` : ''),
    ]);
  }
  lines.push(table(backendRows), '');
  const bucketRows = [['BUCKET', 'ENCRYPTED', 'OBJECTS', 'BYTES', 'CHUNKS', 'CHUNK SIZE']];
  for (const b of status.buckets) {
    bucketRows.push([
      b.name,
      b.encrypted ? 'yes' : 'no',
      String(b.objects),
      formatSize(b.bytes),
      String(b.chunks),
      formatSize(b.chunkSize),
    ]);
  }
  lines.push(status.buckets.length ? table(bucketRows) : 'no buckets', '');
  const { repair, gc } = status;
  lines.push(
    table([
      [
        'repair backlog:',
        `${repair.underReplicatedChunks} under-replicated chunk(s), ${repair.missingReplicas} missing replica(s), ${repair.lostChunks} lost` +
          `; ${repair.recorded} chunk(s) recorded for repair` +
          (repair.queued === undefined ? '' : `; ${repair.queued} queued in the server`),
      ],
      [
        'gc backlog:',
        `${gc.queued} chunk(s) queued` +
          (gc.due === undefined
            ? ''
            : `, ${gc.due} past the ${gc.graceSeconds} s grace period (lilio gc deletes those)`),
      ],
      ...(status.uploads?.open
        ? [
            [
              'uploads:',
              `${status.uploads.open} multipart upload(s) in progress (gc aborts one untouched for ${status.uploads.expireAfterSeconds} s)`,
            ],
          ]
        : []),
    ]),
  );
  lines.push('');
  const sessions = status.sessions ?? [];
  const sessionRows = [['SESSION', 'PID', 'HOST', 'ROLE', 'STARTED', 'FILES OPEN', 'HELD CHUNKS']];
  for (const s of sessions) {
    sessionRows.push([s.id, String(s.pid), s.host, s.role, s.started, String(s.openFiles), String(s.heldChunks)]);
  }
  lines.push(sessions.length ? table(sessionRows) : 'no live sessions');
  return lines.join('\n');
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description(
      'backends (health, latency, chunks, bytes, ring share), buckets, the repair and gc backlogs, and live sessions',
    )
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      await withTarget(command, async (target) => {
        const status = await target.status();
        console.log(options.json ? JSON.stringify(status, null, 2) : renderStatus(status));
      });
    });
}
