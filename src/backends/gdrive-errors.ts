import { setTimeout as sleep } from 'node:timers/promises';
import {
  describeError,
  LilioError,
  NoSpaceError,
  NotFoundError,
  PermissionError,
  TimeoutError,
  UnavailableError,
} from '../core/errors.js';

/** The parts of a GaxiosError we read: status, Google's JSON error body, a network code. */
interface GaxiosErrorShape {
  name?: string;
  message?: string;
  status?: number;
  code?: string | number;
  error?: { name?: string; code?: string };
  response?: { status?: number; data?: unknown; headers?: { get?(name: string): string | null } };
}

/** Google's error body: {"error": {"code", "message", "errors": [{"domain", "reason", "message"}], "status"}}. */
interface GoogleErrorBody {
  error?:
    | string
    | { code?: number; message?: string; status?: string; errors?: Array<{ reason?: string; message?: string }> };
  error_description?: string;
}

// Drive's documented "slow down" answers: 403 with these reasons, or 429.
const RATE_LIMIT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'sharingRateLimitExceeded']);
// Out of quota, or the folder is full (Drive caps a folder at 500,000 items).
const NO_SPACE_REASONS = new Set([
  'storageQuotaExceeded',
  'quotaExceeded',
  'teamDriveFileLimitExceeded',
  'numChildrenInNonRootLimitExceeded',
  'activeItemCreationLimitExceeded',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
]);

export interface DriveProblem {
  error: LilioError;
  /** Worth another attempt after a backoff: rate limits, 5xx, a dropped connection. */
  retryable: boolean;
  /** Seconds the server asked us to wait (Retry-After), if it said. */
  retryAfterSeconds?: number;
}

/** One googleapis failure as a LilioError, and whether retrying it could help. */
export function classifyDriveError(err: unknown, where: string, signal?: AbortSignal): DriveProblem {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    const error =
      reason instanceof LilioError ? reason : new TimeoutError(`${where}: aborted (${describeError(reason)})`);
    return { error, retryable: false };
  }
  if (err instanceof LilioError) return { error: err, retryable: false };
  const e = (typeof err === 'object' && err !== null ? err : {}) as GaxiosErrorShape;
  const status = e.status ?? e.response?.status;
  const body = (e.response?.data ?? undefined) as GoogleErrorBody | undefined;

  if (status === undefined) {
    const code = typeof e.code === 'string' ? e.code : e.error?.code;
    const name = e.error?.name ?? e.name;
    if (name === 'AbortError' || name === 'TimeoutError' || code === 'ETIMEDOUT') {
      return { error: new TimeoutError(`${where}: ${describeError(err)}`), retryable: false };
    }
    const retryable = code !== undefined && NETWORK_CODES.has(code);
    const detail = code && !describeError(err).includes(code) ? ` (${code})` : '';
    return { error: new UnavailableError(`${where}: ${describeError(err)}${detail}`, { cause: err }), retryable };
  }

  // The token endpoint answers OAuth's own shape: {"error": "invalid_grant", "error_description": "..."}.
  if (typeof body?.error === 'string') {
    const message = `${where}: cannot get an access token: ${body.error}${body.error_description ? `: ${body.error_description}` : ''}`;
    if (status >= 500) return { error: new UnavailableError(message), retryable: true };
    return { error: new PermissionError(message), retryable: false };
  }
  const reason = body?.error?.errors?.[0]?.reason;
  const message = `${where}: ${reason ?? 'HTTP'} (HTTP ${status}): ${body?.error?.message ?? describeError(err)}`;
  const retryAfter = Number(e.response?.headers?.get?.('retry-after'));
  const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined;

  if (status === 404) return { error: new NotFoundError(message), retryable: false };
  if (status === 429 || (status === 403 && reason !== undefined && RATE_LIMIT_REASONS.has(reason))) {
    return { error: new UnavailableError(message), retryable: true, retryAfterSeconds };
  }
  if (status === 403 && reason !== undefined && NO_SPACE_REASONS.has(reason)) {
    return { error: new NoSpaceError(message), retryable: false };
  }
  if (status === 401 || status === 403) return { error: new PermissionError(message), retryable: false };
  if (status === 408) return { error: new TimeoutError(message), retryable: true };
  if (status >= 500) return { error: new UnavailableError(message), retryable: true, retryAfterSeconds };
  return { error: new UnavailableError(message), retryable: false };
}

// Google asks for truncated exponential backoff; past this a replica elsewhere is the better bet.
const MAX_BACKOFF_MS = 8_000;

export interface DriveRetryPolicy {
  where: string;
  signal?: AbortSignal;
  /** Attempts in all, the first included. */
  attempts: number;
  /** The first backoff; it doubles per attempt, with up to 100% jitter. */
  baseMs: number;
}

/**
 * Runs one Drive request, retrying what classifyDriveError calls retryable. Ours, not gaxios':
 * gaxios retries no POST and no 403 rate limit, and cannot replay a streamed upload body.
 * A server that asks for a longer wait than MAX_BACKOFF_MS (Retry-After) fails the call now.
 */
export async function withDriveRetries<T>(run: () => Promise<T>, policy: DriveRetryPolicy): Promise<T> {
  const { where, signal } = policy;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const problem = classifyDriveError(err, where, signal);
      const asked = problem.retryAfterSeconds !== undefined ? problem.retryAfterSeconds * 1000 : undefined;
      const backoff = asked ?? Math.min(MAX_BACKOFF_MS, policy.baseMs * 2 ** (attempt - 1) * (1 + Math.random()));
      if (!problem.retryable || attempt >= policy.attempts || backoff > MAX_BACKOFF_MS) throw problem.error;
      try {
        await sleep(backoff, undefined, { signal });
      } catch {
        throw classifyDriveError(err, where, signal).error; // aborted during the backoff
      }
    }
  }
}
