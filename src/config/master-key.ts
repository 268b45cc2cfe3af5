import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseMasterKey } from '../core/crypto.js';
import { ConfigError } from '../core/errors.js';
import type { MasterKeySource } from './load.js';

export interface LoadMasterKeyOptions {
  /**
   * Whether a missing key file at the default location may be replaced by a
   * new key. Only the engine can tell (no bucket is encrypted yet): a new key
   * opens none of the buckets encrypted under the lost one.
   */
  create: boolean;
}

/**
 * Reads (or, for the default location and when allowed, creates) the master
 * key. It never leaves this process: only bucket keys wrapped BY it are
 * stored in metadata.
 */
export function loadMasterKey(source: MasterKeySource, options: LoadMasterKeyOptions): Buffer {
  if (source.kind === 'env') {
    try {
      return parseMasterKey(source.base64.trim());
    } catch (err) {
      throw new ConfigError(`LILIO_MASTER_KEY: ${(err as Error).message}`);
    }
  }
  let text: string;
  try {
    text = readFileSync(source.path, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (missing && source.create && !options.create) {
      throw new ConfigError(
        `master key file ${source.path} is missing, and encrypted buckets exist that only the key they were ` +
          'created with can open: restore that file, or set LILIO_MASTER_KEY to that key ' +
          '(a new key is generated only while no bucket is encrypted)',
      );
    }
    if (!missing || !source.create) {
      throw new ConfigError(
        `cannot read master key ${source.path}: ${(err as Error).message} (restore it, or set LILIO_MASTER_KEY)`,
      );
    }
    createKeyFile(source.path);
    text = readFileSync(source.path, 'utf8');
  }
  const mode = statSync(source.path).mode & 0o077;
  if (mode !== 0) {
    throw new ConfigError(
      `master key ${source.path} is readable by others (mode ${(mode | 0o600).toString(8)}); chmod 600 it`,
    );
  }
  try {
    return parseMasterKey(text.trim());
  } catch (err) {
    throw new ConfigError(`master key ${source.path}: ${(err as Error).message}`);
  }
}

/**
 * Two processes may start at once on a fresh home: each writes a private temp
 * file and link()s it into place, which fails for the loser, so exactly one
 * key ever exists and nobody reads a half-written file.
 */
function createKeyFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temp);
  }
}
