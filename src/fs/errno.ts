import { constants } from 'node:os';
import { type ErrorCode, LilioError } from '../core/errors.js';

const E = constants.errno;

/** fuse-native takes negative errno values. */
export const Errno = {
  EPERM: -E.EPERM,
  ENOENT: -E.ENOENT,
  EIO: -E.EIO,
  EBADF: -E.EBADF,
  EACCES: -E.EACCES,
  EEXIST: -E.EEXIST,
  EXDEV: -E.EXDEV,
  ENOTDIR: -E.ENOTDIR,
  EISDIR: -E.EISDIR,
  EINVAL: -E.EINVAL,
  EFBIG: -E.EFBIG,
  ENOSPC: -E.ENOSPC,
  EROFS: -E.EROFS,
  ENAMETOOLONG: -E.ENAMETOOLONG,
  ENOTEMPTY: -E.ENOTEMPTY,
  ENODATA: -E.ENODATA,
  ENOTSUP: -E.ENOTSUP,
  ERANGE: -E.ERANGE,
  ETIMEDOUT: -E.ETIMEDOUT,
  EAGAIN: -E.EAGAIN,
  EBUSY: -E.EBUSY,
  E2BIG: -E.E2BIG,
  ENXIO: -E.ENXIO,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  NOT_FOUND: Errno.ENOENT,
  EXISTS: Errno.EEXIST,
  NOT_EMPTY: Errno.ENOTEMPTY,
  INVALID: Errno.EINVAL,
  NAME_TOO_LONG: Errno.ENAMETOOLONG,
  IS_DIR: Errno.EISDIR,
  NOT_DIR: Errno.ENOTDIR,
  // A lost compare-and-set that could not be resolved: the caller may retry.
  CONFLICT: Errno.EAGAIN,
  // Not known to have landed: the close/fsync must not report success.
  COMMIT_UNKNOWN: Errno.EIO,
  QUORUM: Errno.EIO,
  UNAVAILABLE: Errno.EIO,
  INTEGRITY: Errno.EIO,
  NO_SPACE: Errno.ENOSPC,
  PERMISSION: Errno.EACCES,
  READ_ONLY: Errno.EROFS,
  CONFIG: Errno.EINVAL,
  TIMEOUT: Errno.EIO,
  UNSUPPORTED: Errno.ENOTSUP,
  TOO_BIG: Errno.EFBIG,
  // Multipart uploads never reach the mount; should one, it is a bad argument.
  NO_SUCH_UPLOAD: Errno.ENOENT,
  INVALID_PART: Errno.EINVAL,
  INVALID_PART_ORDER: Errno.EINVAL,
  ENTITY_TOO_SMALL: Errno.EINVAL,
};

/** An errno carried through the FUSE layer where no LilioError fits (EPERM at the root, EBADF...). */
export class ErrnoError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** The errno the kernel should see for a thrown value; unknown failures are EIO, never a crash. */
export function toErrno(err: unknown): number {
  if (err instanceof ErrnoError) return err.errno;
  if (err instanceof LilioError) return BY_CODE[err.code];
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && code in E) return -(E as Record<string, number>)[code]!;
  return Errno.EIO;
}
