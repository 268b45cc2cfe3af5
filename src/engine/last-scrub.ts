import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the last scrub found, kept for `lilio status`. A scrub reads every
 * replica; status only lists the backends, so without this record a corrupt
 * replica would be invisible to status until the next scrub or read.
 *
 * Kept in a small file under $LILIO_HOME (state/, one file per config), not
 * in the metadata store: the summary is an operator's note, not part of the
 * store's consistency (no commit depends on it), and the metadata store's
 * three implementations (SQLite, etcd, memory) and their schemas stay as
 * they are. The cost: status shows the scrubs run on this host with this
 * config; a server's status (--endpoint) shows the scrubs run beside it,
 * which is where `lilio scrub` has to run anyway.
 */
export interface LastScrub {
  finishedAt: string;
  /** The bucket scrubbed, or undefined for all of them. */
  bucket?: string;
  repair: boolean;
  chunks: number;
  replicasChecked: number;
  problems: { missing: number; corrupt: number; unreachable: number; unknown_backend: number };
  underReplicated: number;
  lost: number;
  /** Corrupt replicas found (the first MAX_LISTED), and whether --repair rewrote them. */
  corrupt: CorruptReplica[];
}

export interface CorruptReplica {
  bucket: string;
  key: string;
  chunk: string;
  backend: string;
  repaired: boolean;
}

export const MAX_LISTED = 100;

function recordPath(home: string, configSource: string): string {
  const id = createHash('sha256').update(configSource).digest('hex').slice(0, 16);
  return join(home, 'state', `last-scrub-${id}.json`);
}

/** Replaces the record whole (temporary file + rename), so a reader never sees half of one. */
export function saveLastScrub(home: string, configSource: string, record: LastScrub): void {
  const path = recordPath(home, configSource);
  mkdirSync(join(home, 'state'), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify({ config: configSource, ...record }, null, 2)}\n`);
  renameSync(temp, path);
}

/** The last scrub's record, or undefined when none was kept (or it cannot be read). */
export function loadLastScrub(home: string, configSource: string): LastScrub | undefined {
  try {
    const { config: _config, ...record } = JSON.parse(readFileSync(recordPath(home, configSource), 'utf8'));
    return record as LastScrub;
  } catch {
    return undefined;
  }
}
