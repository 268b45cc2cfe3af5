import { InvalidError, NameTooLongError } from '../core/errors.js';
import { bucketNameProblem, keyProblem, MAX_KEY_BYTES, MAX_SEGMENT_BYTES } from '../core/names.js';

/** Where a mount path points: the root, a bucket's folder, or a key inside a bucket. */
export type MountPath =
  | { kind: 'root' }
  | { kind: 'bucket'; bucket: string }
  | { kind: 'key'; bucket: string; key: string };

/**
 * "/photos/2024/a.jpg" -> bucket "photos", key "2024/a.jpg". Names are
 * checked here, at the mount's edge, with the same rules as the CLI and API.
 */
export function parseMountPath(path: string): MountPath {
  if (path === '/' || path === '') return { kind: 'root' };
  const body = path.startsWith('/') ? path.slice(1) : path;
  const slash = body.indexOf('/');
  const bucket = slash < 0 ? body : body.slice(0, slash);
  const key = slash < 0 ? '' : body.slice(slash + 1);
  // Past NAME_MAX a name is too long (ENAMETOOLONG) before it is an invalid bucket name (EINVAL).
  if (Buffer.byteLength(bucket, 'utf8') > MAX_SEGMENT_BYTES) {
    throw new NameTooLongError(`"${bucket.slice(0, 80)}…" is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  if (!key) return { kind: 'bucket', bucket };
  const problem = keyProblem(key);
  if (problem) {
    const where = `${bucket}/${key.slice(0, 60)}${key.length > 60 ? '…' : ''}`;
    if (!problem.tooLong) throw new InvalidError(`${where}: the key ${problem.message}`);
    const bytes = Buffer.byteLength(key, 'utf8');
    throw new NameTooLongError(
      bytes > MAX_KEY_BYTES
        ? `${where}: a path inside a bucket is an object key, at most ${MAX_KEY_BYTES} bytes (S3's limit); this one is ${bytes}`
        : `${where}: the key ${problem.message}`,
    );
  }
  return { kind: 'key', bucket, key };
}

/** A bucket name a user may create with mkdir at the root; the reason when not. */
export function bucketProblem(name: string): string | undefined {
  return bucketNameProblem(name);
}

/** "a/b/c" -> "a/b/"; "c" -> "" (the prefix that lists the key's directory). */
export function parentPrefix(key: string): string {
  const slash = key.lastIndexOf('/');
  return slash < 0 ? '' : key.slice(0, slash + 1);
}

export function baseName(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
