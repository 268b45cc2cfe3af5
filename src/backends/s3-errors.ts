import {
  describeError,
  LilioError,
  NoSpaceError,
  PermissionError,
  TimeoutError,
  UnavailableError,
} from '../core/errors.js';

/** What the SDK attaches to a thrown error: a service exception carries the status and the S3 error code as name. */
interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const PERMISSION_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
]);
// MinIO says XMinioStorageFull / 507; quotas of other services answer QuotaExceeded.
const NO_SPACE_CODES = new Set(['XMinioStorageFull', 'QuotaExceeded', 'InsufficientStorage']);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'RequestTimeout']);

function shape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

function statusOf(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

/** A missing key (GetObject says NoSuchKey, HeadObject just 404); never a missing bucket. */
export function isS3NotFound(err: unknown): boolean {
  const { name } = shape(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

export interface S3ErrorContext {
  /** `backend "x": cannot put s3://bucket/key`, the start of every message. */
  where: string;
  bucket: string;
  signal?: AbortSignal;
}

/** One S3 SDK failure as a LilioError; the backend handles "not found" itself before calling this. */
export function mapS3Error(err: unknown, context: S3ErrorContext): LilioError {
  const { where, signal } = context;
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof LilioError) return reason;
    return new TimeoutError(`${where}: aborted (${describeError(reason)})`);
  }
  if (err instanceof LilioError) return err;
  const { name = 'Error', code } = shape(err);
  const status = statusOf(err);
  const detail = status !== undefined ? `${name} (HTTP ${status}): ${describeError(err)}` : describeError(err);

  if (name === 'AbortError' || name === 'TimeoutError' || TIMEOUT_CODES.has(name) || TIMEOUT_CODES.has(code ?? '')) {
    return new TimeoutError(`${where}: ${detail}`);
  }
  if (name === 'NoSuchBucket') {
    return new UnavailableError(`${where}: bucket "${context.bucket}" does not exist`, { cause: err });
  }
  if (name === 'CredentialsProviderError') {
    return new PermissionError(
      `${where}: no AWS credentials (set accessKeyId and secretAccessKey, or the AWS environment): ${describeError(err)}`,
    );
  }
  if (PERMISSION_CODES.has(name) || status === 401 || status === 403) {
    return new PermissionError(`${where}: ${detail}`);
  }
  if (NO_SPACE_CODES.has(name) || status === 507) return new NoSpaceError(`${where}: ${detail}`);
  // Throttling (SlowDown, 503), 5xx and network errors (ECONNREFUSED, ECONNRESET, ENOTFOUND, ...) all
  // mean "this backend cannot serve now"; the SDK has already retried them.
  return new UnavailableError(`${where}: ${detail}${code && !detail.includes(code) ? ` (${code})` : ''}`, {
    cause: err,
  });
}
