import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { ConfigError, InvalidError, NotFoundError } from '../core/errors.js';
import { validateBucketName } from '../core/names.js';

/**
 * S3 access keys: a JSON file of {accessKeyId, secret, buckets, readOnly},
 * mode 0600, written atomically. The server re-reads it when it changes, so
 * `lilio s3 keys add|rm` takes effect without a restart. Secrets leave this
 * module only to sign-check requests (sigv4.ts) and once, to the operator,
 * when a key is created.
 */

export interface AccessKey {
  accessKeyId: string;
  secret: string;
  /** Buckets this key may reach; ["*"] for all (and for ListBuckets/CreateBucket). */
  buckets: string[];
  readOnly: boolean;
  createdAt: number;
}

const keySchema = z.object({
  accessKeyId: z.string().regex(/^[A-Za-z0-9._-]{3,128}$/),
  secret: z.string().min(8).max(256),
  buckets: z.array(z.string()).min(1),
  readOnly: z.boolean().default(false),
  createdAt: z.number().default(0),
});
const fileSchema = z.object({ keys: z.array(keySchema) });

export const CREDENTIALS_FILE_NAME = 's3-credentials.json';

export function defaultCredentialsPath(home: string): string {
  return join(home, CREDENTIALS_FILE_NAME);
}

export function keyAllowsBucket(key: AccessKey, bucket: string): boolean {
  return key.buckets.includes('*') || key.buckets.includes(bucket);
}

/** Reads the file; a missing file is no keys. Refuses a file others may read (it holds secrets). */
export function readCredentials(path: string): AccessKey[] {
  let text: string;
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0) {
      throw new ConfigError(
        `${path} is readable by others (mode ${(mode & 0o777).toString(8)}): it holds secrets, chmod 600 it`,
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(`${path} is not valid JSON`);
  }
  const result = fileSchema.safeParse(parsed);
  // The issue path only, never the value: the value may be a secret.
  if (!result.success) {
    const where = result.error.issues[0]?.path.join('.') ?? '';
    throw new ConfigError(`${path}: malformed credentials file (at ${where || 'top level'})`);
  }
  return result.data.keys;
}

export function writeCredentials(path: string, keys: AccessKey[]): void {
  const temporary = join(dirname(path), `.${CREDENTIALS_FILE_NAME}.${process.pid}.tmp`);
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ keys }, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

export interface NewKeyOptions {
  buckets: string[];
  readOnly: boolean;
  accessKeyId?: string;
}

/** Adds a key with a fresh secret and returns it (the only time the secret is shown). */
export function addAccessKey(path: string, options: NewKeyOptions): AccessKey {
  const keys = readCredentials(path);
  for (const bucket of options.buckets) if (bucket !== '*') validateBucketName(bucket);
  if (options.buckets.length === 0) throw new InvalidError('a key needs at least one bucket (or "*")');
  const accessKeyId =
    options.accessKeyId ??
    `LK${randomBytes(12)
      .toString('base64url')
      .toUpperCase()
      .replace(/[^A-Z0-9]/g, 'X')}`;
  if (!keySchema.shape.accessKeyId.safeParse(accessKeyId).success) {
    throw new InvalidError('an access key id is 3 to 128 letters, digits, ".", "_" or "-"');
  }
  if (keys.some((k) => k.accessKeyId === accessKeyId)) throw new InvalidError(`access key ${accessKeyId} exists`);
  const key: AccessKey = {
    accessKeyId,
    secret: randomBytes(30).toString('base64url'),
    buckets: [...new Set(options.buckets)],
    readOnly: options.readOnly,
    createdAt: Date.now(),
  };
  writeCredentials(path, [...keys, key]);
  return key;
}

export function removeAccessKey(path: string, accessKeyId: string): void {
  const keys = readCredentials(path);
  const rest = keys.filter((k) => k.accessKeyId !== accessKeyId);
  if (rest.length === keys.length) throw new NotFoundError(`no access key ${accessKeyId}`);
  writeCredentials(path, rest);
}

/** How often the server looks at the file's mtime: keys added or removed apply within this. */
const RELOAD_CHECK_MS = 1_000;

/** The keys a running server accepts, re-read when the file changes. */
export class KeyRing {
  private keys = new Map<string, AccessKey>();
  private stamp = '';
  private checkedAt = 0;

  constructor(readonly path: string) {
    this.reload();
  }

  get size(): number {
    this.refresh();
    return this.keys.size;
  }

  lookup(accessKeyId: string): AccessKey | undefined {
    this.refresh();
    return this.keys.get(accessKeyId);
  }

  private refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt < RELOAD_CHECK_MS) return;
    this.checkedAt = now;
    try {
      this.reload();
    } catch {
      // A file being edited by hand may be broken for a moment: the keys loaded last stay in force.
    }
  }

  private reload(): void {
    let stamp = 'missing';
    try {
      const st = statSync(this.path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {}
    if (stamp === this.stamp) return;
    this.keys = new Map(readCredentials(this.path).map((k) => [k.accessKeyId, k]));
    this.stamp = stamp;
  }
}
