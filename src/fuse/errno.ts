/**
 * Errors as the kernel wants them: a positive errno, sent negated in the
 * reply header. A filesystem throws FuseErrno, or any error whose `code` is
 * an errno name (Node's own system errors are), and the session maps it here.
 */
import { constants } from 'node:os';

export const Errno = constants.errno;

export class FuseErrno extends Error {
  readonly errno: number;
  constructor(errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
    this.name = 'FuseErrno';
    this.errno = errno;
  }
}

/** Shorthand for `throw fuseError('ENOENT')`. */
export function fuseError(code: keyof typeof Errno, message?: string): FuseErrno {
  return new FuseErrno(Errno[code], message ?? code);
}

/** The errno for a thrown value, or undefined when it carries none (the session answers EIO and logs it). */
export function errnoOf(err: unknown): number | undefined {
  if (err instanceof FuseErrno) return err.errno;
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code in Errno) return Errno[code as keyof typeof Errno];
  }
  return undefined;
}
