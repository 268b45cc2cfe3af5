import {
  type ErrorCode,
  InvalidError,
  type LilioError,
  NoSpaceError,
  NotFoundError,
  PermissionError,
  ReadOnlyError,
  TimeoutError,
  UnavailableError,
} from '../core/errors.js';

/**
 * The LilioError for a storage node's error answer: the one its JSON body
 * names (`{"error":{"code","message"}}`, src/server/node.ts), else one that
 * fits the HTTP status (a proxy in front of the node answers without our body).
 */
export function nodeError(who: string, url: string, status: number, what: string, body: unknown): LilioError {
  if (status === 401) return new PermissionError(`${who}: ${url} refused the token (HTTP 401)`);
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const message = `${who}: ${what}: ${typeof error?.message === 'string' ? error.message : `HTTP ${status}`}`;
  const code = typeof error?.code === 'string' ? (error.code as ErrorCode) : codeOfStatus(status);
  switch (code) {
    case 'NOT_FOUND':
      return new NotFoundError(message);
    case 'INVALID':
    case 'NAME_TOO_LONG':
      return new InvalidError(message);
    case 'NO_SPACE':
      return new NoSpaceError(message);
    case 'PERMISSION':
      return new PermissionError(message);
    case 'READ_ONLY':
      return new ReadOnlyError(message);
    case 'TIMEOUT':
      return new TimeoutError(message);
    default:
      // Whatever else went wrong over there, this backend cannot serve the call now.
      return new UnavailableError(message);
  }
}

function codeOfStatus(status: number): ErrorCode {
  if (status === 404) return 'NOT_FOUND';
  if (status === 400 || status === 405 || status === 411 || status === 413) return 'INVALID';
  if (status === 401 || status === 403) return 'PERMISSION';
  if (status === 507) return 'NO_SPACE';
  if (status === 408 || status === 504) return 'TIMEOUT';
  return 'UNAVAILABLE';
}
