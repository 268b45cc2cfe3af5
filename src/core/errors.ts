import type { ObjectRecord } from './types.js';

/**
 * The one error family of Lilio. Every failure that crosses a module boundary
 * is a LilioError with a stable `code`; the mount maps codes to errno
 * (src/fs/errno.ts), the HTTP API to status codes (src/server/errors.ts), the
 * CLI to one line on stderr. Nothing else inspects messages.
 */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'EXISTS'
  | 'NOT_EMPTY'
  | 'INVALID'
  | 'NAME_TOO_LONG'
  | 'IS_DIR'
  | 'NOT_DIR'
  | 'CONFLICT'
  | 'COMMIT_UNKNOWN'
  | 'QUORUM'
  | 'UNAVAILABLE'
  | 'INTEGRITY'
  | 'NO_SPACE'
  | 'PERMISSION'
  | 'READ_ONLY'
  | 'CONFIG'
  | 'TIMEOUT'
  | 'UNSUPPORTED'
  | 'TOO_BIG'
  | 'NO_SUCH_UPLOAD'
  | 'INVALID_PART'
  | 'INVALID_PART_ORDER'
  | 'ENTITY_TOO_SMALL';

export class LilioError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class NotFoundError extends LilioError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

export class ExistsError extends LilioError {
  constructor(message: string) {
    super('EXISTS', message);
  }
}

export class NotEmptyError extends LilioError {
  constructor(message: string) {
    super('NOT_EMPTY', message);
  }
}

export class InvalidError extends LilioError {
  constructor(message: string) {
    super('INVALID', message);
  }
}

/**
 * The command line itself is wrong: an option value that does not parse, or
 * options that exclude each other. The CLI exits 2 for it, as for the usage
 * errors its parser finds, and 1 for an operation that failed.
 */
export class UsageError extends LilioError {
  constructor(message: string) {
    super('INVALID', message);
  }
}

export class NameTooLongError extends LilioError {
  constructor(message: string) {
    super('NAME_TOO_LONG', message);
  }
}

export class IsDirError extends LilioError {
  constructor(message: string) {
    super('IS_DIR', message);
  }
}

export class NotDirError extends LilioError {
  constructor(message: string) {
    super('NOT_DIR', message);
  }
}

/** A compare-and-set commit lost against a concurrent writer. */
export class ConflictError extends LilioError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

/**
 * A commit was sent to the metadata store and its answer was lost (the
 * connection was cut, or the deadline passed after sending): it may have been
 * applied, may still be applied later, or never. Never handle it as a
 * failure that changed nothing: the chunks the commit references must not be
 * deleted, since a version that landed may point at them. The engine resolves
 * it by reading the object back (src/engine/commit-outcome.ts).
 */
export class CommitUnknownError extends LilioError {
  /** The record the commit acted on as read before sending it (what a delete removed, a rename moved), if known. */
  readonly subject: ObjectRecord | undefined;

  constructor(message: string, options?: { cause?: unknown; subject?: ObjectRecord }) {
    super('COMMIT_UNKNOWN', message, options);
    this.subject = options?.subject;
  }
}

export interface ReplicaFailure {
  backend: string;
  error: string;
  /** The LilioError code of the failure, when it was one (NO_SPACE, TIMEOUT...). */
  code?: ErrorCode;
}

/** Fewer than W replicas of a chunk could be written (or R verified on a strict read). */
export class QuorumError extends LilioError {
  readonly failures: ReplicaFailure[];
  readonly needed: number;
  readonly succeeded: number;

  constructor(what: string, needed: number, succeeded: number, failures: ReplicaFailure[]) {
    const detail = failures.map((f) => `${f.backend}: ${f.error}`).join('; ');
    // Every replica refused for want of space: that is what the user must hear (ENOSPC on the
    // mount, 507 from the API), not a generic I/O error.
    const full = failures.length > 0 && failures.every((f) => f.code === 'NO_SPACE');
    super(
      full ? 'NO_SPACE' : 'QUORUM',
      `${what}: ${full ? 'no space left on its backends: ' : ''}quorum not reached (${succeeded}/${needed})${detail ? ` — ${detail}` : ''}`,
    );
    this.failures = failures;
    this.needed = needed;
    this.succeeded = succeeded;
  }
}

export class UnavailableError extends LilioError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

/** Stored bytes do not match their checksum, or do not authenticate. */
export class IntegrityError extends LilioError {
  constructor(message: string) {
    super('INTEGRITY', message);
  }
}

export class NoSpaceError extends LilioError {
  constructor(message: string) {
    super('NO_SPACE', message);
  }
}

export class PermissionError extends LilioError {
  constructor(message: string) {
    super('PERMISSION', message);
  }
}

export class ReadOnlyError extends LilioError {
  constructor(message: string) {
    super('READ_ONLY', message);
  }
}

export class ConfigError extends LilioError {
  constructor(message: string) {
    super('CONFIG', message);
  }
}

export class TimeoutError extends LilioError {
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

export class UnsupportedError extends LilioError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
  }
}

/** A file would grow past the largest size a version may have (EFBIG). */
export class FileTooBigError extends LilioError {
  constructor(message: string) {
    super('TOO_BIG', message);
  }
}

/** A multipart upload that does not exist: never created, completed, aborted or expired (S3 NoSuchUpload). */
export class NoSuchUploadError extends LilioError {
  constructor(message: string) {
    super('NO_SUCH_UPLOAD', message);
  }
}

/** A part named at completion is missing or has another ETag (S3 InvalidPart). */
export class InvalidPartError extends LilioError {
  constructor(message: string) {
    super('INVALID_PART', message);
  }
}

/** The parts named at completion are not in ascending order (S3 InvalidPartOrder). */
export class InvalidPartOrderError extends LilioError {
  constructor(message: string) {
    super('INVALID_PART_ORDER', message);
  }
}

/** A part other than the last is smaller than the minimum part size (S3 EntityTooSmall). */
export class EntityTooSmallError extends LilioError {
  constructor(message: string) {
    super('ENTITY_TOO_SMALL', message);
  }
}

/**
 * A LilioError rebuilt from its code and message after crossing a boundary
 * that keeps only those (a worker thread's reply): as the class that has
 * that code, so `instanceof ConflictError` still holds. A QuorumError's
 * replica details do not survive; its code and message do.
 */
export function reviveLilioError(code: ErrorCode, message: string): LilioError {
  const make = REVIVE[code];
  return make ? make(message) : new LilioError(code, message);
}

const REVIVE: Partial<Record<ErrorCode, (message: string) => LilioError>> = {
  NOT_FOUND: (m) => new NotFoundError(m),
  EXISTS: (m) => new ExistsError(m),
  NOT_EMPTY: (m) => new NotEmptyError(m),
  INVALID: (m) => new InvalidError(m),
  NAME_TOO_LONG: (m) => new NameTooLongError(m),
  IS_DIR: (m) => new IsDirError(m),
  NOT_DIR: (m) => new NotDirError(m),
  CONFLICT: (m) => new ConflictError(m),
  UNAVAILABLE: (m) => new UnavailableError(m),
  INTEGRITY: (m) => new IntegrityError(m),
  NO_SPACE: (m) => new NoSpaceError(m),
  PERMISSION: (m) => new PermissionError(m),
  READ_ONLY: (m) => new ReadOnlyError(m),
  CONFIG: (m) => new ConfigError(m),
  TIMEOUT: (m) => new TimeoutError(m),
  UNSUPPORTED: (m) => new UnsupportedError(m),
  TOO_BIG: (m) => new FileTooBigError(m),
  COMMIT_UNKNOWN: (m) => new CommitUnknownError(m),
  NO_SUCH_UPLOAD: (m) => new NoSuchUploadError(m),
  INVALID_PART: (m) => new InvalidPartError(m),
  INVALID_PART_ORDER: (m) => new InvalidPartOrderError(m),
  ENTITY_TOO_SMALL: (m) => new EntityTooSmallError(m),
};

export function isLilioError(err: unknown): err is LilioError {
  return err instanceof LilioError;
}

export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof LilioError && err.code === code;
}

/** A short, human message for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
