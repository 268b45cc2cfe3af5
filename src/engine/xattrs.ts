import { decryptChunk, encryptChunk } from '../core/crypto.js';
import { IntegrityError } from '../core/errors.js';
import type { BucketContext } from './chunk-store.js';

/**
 * user.* extended attribute values as the metadata store holds them. In an
 * encrypted bucket each value is sealed with the bucket's data key
 * (AES-256-GCM, fresh nonce) and stored as SEALED_PREFIX + base64; elsewhere,
 * and in records written before values were sealed, it is plain base64. The
 * prefix cannot start a base64 string (':' is not in its alphabet), so both
 * forms are told apart and old values keep reading.
 *
 * The associated data binds a value to its attribute name, not to its object:
 * a record moves to a new key on rename and gets a new versionId on every
 * content commit while its xattrs carry over unchanged, so neither can be
 * bound without re-sealing every value on each of those commits. Binding to
 * the name stops values being swapped between attributes; moving a value to
 * another object takes write access to the metadata, which can move whole
 * records (inline bytes and all) anyway. Names stay in clear, as keys do.
 */

const SEALED_PREFIX = 'aes-gcm:';

function xattrAad(name: string): string {
  return `lilio-xattr:${name}`;
}

export function isSealedXattr(stored: string): boolean {
  return stored.startsWith(SEALED_PREFIX);
}

/** The stored form of an attribute value in this bucket. */
export function sealXattr(ctx: BucketContext, name: string, value: Uint8Array): string {
  if (!ctx.dataKey) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  return SEALED_PREFIX + encryptChunk(ctx.dataKey, xattrAad(name), value).toString('base64');
}

/** The plaintext of a stored attribute value; IntegrityError if it does not authenticate. */
export function openXattr(ctx: BucketContext, name: string, stored: string): Buffer {
  if (!isSealedXattr(stored)) return Buffer.from(stored, 'base64');
  const bucket = ctx.record.name;
  if (!ctx.dataKey)
    throw new IntegrityError(`bucket "${bucket}" is not encrypted but holds an encrypted xattr ${name}`);
  try {
    return decryptChunk(ctx.dataKey, xattrAad(name), Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64'));
  } catch {
    throw new IntegrityError(`bucket "${bucket}": xattr ${name} does not authenticate (damaged or moved)`);
  }
}

/** Every value opened, as plain base64: what users are shown (CLI stat, the API's ?stat). */
export function openXattrs(
  ctx: BucketContext,
  xattrs: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!xattrs) return undefined;
  const opened: Record<string, string> = {};
  for (const [name, stored] of Object.entries(xattrs)) opened[name] = openXattr(ctx, name, stored).toString('base64');
  return opened;
}

/** Values re-sealed for another bucket (a copy across buckets: each has its own key). */
export function resealXattrs(
  from: BucketContext,
  to: BucketContext,
  xattrs: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!xattrs) return undefined;
  const sealed: Record<string, string> = {};
  for (const [name, stored] of Object.entries(xattrs))
    sealed[name] = sealXattr(to, name, openXattr(from, name, stored));
  return sealed;
}
