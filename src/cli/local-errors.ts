import {
  ExistsError,
  IsDirError,
  LilioError,
  NoSpaceError,
  NotDirError,
  NotFoundError,
  PermissionError,
  ReadOnlyError,
} from '../core/errors.js';

/**
 * Node's own messages ("ENOENT: no such file or directory, stat 'x'",
 * "listen EADDRINUSE: address already in use 127.0.0.1:9100") name syscalls
 * and sometimes our temporary files; the CLI says what is wrong with the
 * thing the user named, in words.
 */
const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a component of the path is not a directory',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EEXIST: 'already exists',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'name too long',
  EFBIG: 'file too large',
  EIO: 'input/output error',
  EBUSY: 'device or resource busy',
  ENXIO: 'no such device or address',
  ENOTCONN: 'not connected (a dead mount? lilio umount it)',
  EMFILE: 'too many open files',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EPIPE: 'broken pipe',
  EINVAL: 'invalid argument',
};

/** The system error code of a Node error ("ENOENT"), if it has one. */
export function systemErrorCode(err: unknown): string | undefined {
  // A LilioError's code ("EXISTS") is not a system error code.
  if (err instanceof LilioError) return undefined;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** "PATH: reason" for a Node system error; `subject` overrides the path Node recorded (e.g. a temp file's). */
export function describeSystemError(err: NodeJS.ErrnoException, subject?: string): string {
  const code = systemErrorCode(err) ?? 'EIO';
  const reason = REASONS[code] ?? code.toLowerCase();
  const address = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const what =
    subject ??
    err.path ??
    (address.address !== undefined
      ? `${address.address}${address.port !== undefined ? `:${address.port}` : ''}`
      : undefined);
  return what ? `${what}: ${reason}` : reason;
}

/** A Node system error about a local file as a LilioError in Lilio's words; anything else unchanged. */
export function localFileError(err: unknown, subject?: string): unknown {
  const code = systemErrorCode(err);
  if (code === undefined) return err;
  const message = describeSystemError(err as NodeJS.ErrnoException, subject);
  switch (code) {
    case 'ENOENT':
      return new NotFoundError(message);
    case 'EACCES':
    case 'EPERM':
      return new PermissionError(message);
    case 'ENOSPC':
    case 'EDQUOT':
      return new NoSpaceError(message);
    case 'EROFS':
      return new ReadOnlyError(message);
    case 'EISDIR':
      return new IsDirError(message);
    case 'ENOTDIR':
      return new NotDirError(message);
    case 'EEXIST':
      return new ExistsError(message);
    default:
      return new LilioError('UNAVAILABLE', message, { cause: err });
  }
}
