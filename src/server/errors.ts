import { type ErrorCode, LilioError } from '../core/errors.js';

/** Failures that exist only at the HTTP edge: no engine call produces them. */
export type ApiErrorCode =
  | 'UNAUTHORIZED'
  | 'METHOD_NOT_ALLOWED'
  | 'RANGE_NOT_SATISFIABLE'
  | 'LENGTH_REQUIRED'
  | 'EXPECTATION_FAILED'
  | 'HEADERS_TOO_LARGE'
  | 'BAD_REQUEST'
  | 'SHUTTING_DOWN'
  | 'INTERNAL';

export type WireErrorCode = ErrorCode | ApiErrorCode;

/**
 * The one mapping from error code to HTTP status. The engine's codes keep
 * their meaning on the wire (a client turns the body's code back into the
 * same LilioError), so nothing else in the server inspects an error.
 */
const STATUS: Record<WireErrorCode, number> = {
  NOT_FOUND: 404,
  EXISTS: 409,
  NOT_EMPTY: 409,
  INVALID: 400,
  NAME_TOO_LONG: 400,
  IS_DIR: 409,
  NOT_DIR: 409,
  CONFLICT: 409,
  // The metadata store lost its answer: retrying (after reading the object back) may be right.
  COMMIT_UNKNOWN: 503,
  // Not enough healthy backends: the request may succeed later, as with a 503 from any overloaded service.
  QUORUM: 503,
  UNAVAILABLE: 503,
  INTEGRITY: 500,
  NO_SPACE: 507,
  PERMISSION: 403,
  READ_ONLY: 403,
  CONFIG: 500,
  TIMEOUT: 504,
  UNSUPPORTED: 501,
  TOO_BIG: 413,
  // Multipart uploads: the statuses S3 answers with.
  NO_SUCH_UPLOAD: 404,
  INVALID_PART: 400,
  INVALID_PART_ORDER: 400,
  ENTITY_TOO_SMALL: 400,
  UNAUTHORIZED: 401,
  METHOD_NOT_ALLOWED: 405,
  RANGE_NOT_SATISFIABLE: 416,
  LENGTH_REQUIRED: 411,
  EXPECTATION_FAILED: 417,
  HEADERS_TOO_LARGE: 431,
  BAD_REQUEST: 400,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
};

/** An HTTP-level refusal, with the response headers it needs (Allow, Content-Range, WWW-Authenticate). */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function httpStatus(code: WireErrorCode): number {
  return STATUS[code];
}

export function isWireErrorCode(code: unknown): code is WireErrorCode {
  return typeof code === 'string' && Object.hasOwn(STATUS, code);
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** What any thrown value becomes on the wire; unknown failures are a 500 that names no internals. */
export function errorResponse(err: unknown): ErrorResponse {
  let code: WireErrorCode = 'INTERNAL';
  let message = 'internal error';
  let headers: Record<string, string> = {};
  if (err instanceof ApiError) {
    code = err.code;
    message = err.message;
    headers = err.headers;
  } else if (err instanceof LilioError) {
    code = err.code;
    message = err.message;
  }
  return {
    status: httpStatus(code),
    headers: { 'content-type': 'application/json', ...headers },
    body: `${JSON.stringify({ error: { code, message } })}\n`,
  };
}

/** API-only codes as a client reports them: the nearest engine code, so callers handle one family. */
const CLIENT_CODE: Record<ApiErrorCode, ErrorCode> = {
  UNAUTHORIZED: 'PERMISSION',
  METHOD_NOT_ALLOWED: 'UNSUPPORTED',
  RANGE_NOT_SATISFIABLE: 'INVALID',
  LENGTH_REQUIRED: 'INVALID',
  EXPECTATION_FAILED: 'INVALID',
  HEADERS_TOO_LARGE: 'INVALID',
  BAD_REQUEST: 'INVALID',
  SHUTTING_DOWN: 'UNAVAILABLE',
  INTERNAL: 'UNAVAILABLE',
};

/** The LilioError a client raises for an error body (the inverse of errorResponse). */
export function errorFromWire(status: number, body: unknown): LilioError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const message = typeof error?.message === 'string' ? error.message : `the server answered ${status}`;
  if (!isWireErrorCode(error?.code)) return new LilioError(status >= 500 ? 'UNAVAILABLE' : 'INVALID', message);
  const code = error.code;
  return new LilioError(
    Object.hasOwn(CLIENT_CODE, code) ? CLIENT_CODE[code as ApiErrorCode] : (code as ErrorCode),
    message,
  );
}
