import type { Etcd3, IOptions, IRangeRequest, IRangeResponse, ITxnRequest, ITxnResponse } from 'etcd3';
import {
  IntegrityError,
  LilioError,
  NoSpaceError,
  PermissionError,
  TimeoutError,
  UnavailableError,
  UnsupportedError,
} from '../core/errors.js';
import { etcd3, etcd3Loaded } from './etcd-lib.js';

/**
 * The connection to etcd and the one place its failures become LilioErrors.
 *
 * Bounded failure: every request carries a deadline, and a call that meets
 * unreachable members retries on the others until `requestTimeoutMs` from its
 * start, then fails with UnavailableError (or TimeoutError when the cluster
 * answered too slowly, e.g. without quorum). The etcd3 client's own retry
 * policy is switched off: it would resend a transaction whose first answer was
 * lost, and only the store knows how to tell whether that one landed (its
 * commits carry a token, see ObjectEntry.t). Reads here retry freely; commit()
 * resends only what certainly never reached etcd, and leaves the decision on
 * a lost answer to the caller (which ends, if it cannot decide, in
 * CommitUnknownError: never a plain failure, see src/engine/commit-outcome.ts).
 */

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
  auth?: { username: string; password: string };
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  dialTimeoutMs: number;
  requestTimeoutMs: number;
  /** etcd's --max-txn-ops: no transaction holds more compares, or more operations, than this. */
  maxTxnOps: number;
}

/** etcd refuses requests over 1.5 MiB (--max-request-bytes); we stay well below. */
export const MAX_TXN_BYTES = 1024 * 1024;

/** Consecutive failures after which a member is skipped for HOST_REST_MS, and other members asked instead. */
const HOST_FAILURES = 2;
const HOST_REST_MS = 1_000;

class HostResting extends Error {
  constructor(host: string) {
    super(`etcd member ${host} failed repeatedly and is skipped for a moment`);
  }
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Skips a member that keeps failing, so calls go to the others; lets one call through after a rest. */
function hostPolicy(host: string): Policy {
  let failures = 0;
  let restUntil = 0;
  const policy = {
    async execute<T>(fn: (context: unknown) => Promise<T> | T): Promise<T> {
      if (Date.now() < restUntil) throw new HostResting(host);
      try {
        const result = await fn({ signal: new AbortController().signal, attempt: 0 });
        failures = 0;
        return result;
      } catch (err) {
        if (err instanceof Error && etcd3().isRecoverableError(err) && ++failures >= HOST_FAILURES) {
          restUntil = Date.now() + HOST_REST_MS;
          failures = 0;
        }
        throw err;
      }
    },
  };
  return policy as unknown as Policy;
}

const noRetry = { execute: <T>(fn: (context: unknown) => Promise<T> | T) => fn({}) } as unknown as Policy;

/** Watch streams come back quickly after a member (or all of them) returns. */
class WatchBackoff {
  constructor(readonly duration = 100) {}
  next(): WatchBackoff {
    return new WatchBackoff(Math.min(this.duration * 2, 2_000));
  }
}

export function createClient(options: EtcdStoreOptions): Etcd3 {
  const settings: IOptions = {
    hosts: options.endpoints,
    dialTimeout: options.dialTimeoutMs,
    grpcOptions: {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    },
    faultHandling: {
      host: hostPolicy,
      global: noRetry,
      watchBackoff: new WatchBackoff() as unknown as Backoff,
    },
  };
  if (options.auth) settings.auth = options.auth;
  if (options.tls?.ca || options.tls?.cert) {
    settings.credentials = {
      rootCertificate: options.tls.ca ?? Buffer.alloc(0),
      ...(options.tls.key ? { privateKey: options.tls.key } : {}),
      ...(options.tls.cert ? { certChain: options.tls.cert } : {}),
    };
  }
  return new (etcd3().Etcd3)(settings);
}

/** Whether trying again (on this or another member) may succeed. */
export function isTransient(err: unknown): boolean {
  if (err instanceof HostResting) return true;
  if (!(err instanceof Error)) return false;
  if (!etcd3Loaded()) return false;
  const lib = etcd3();
  if (err instanceof lib.ClientClosedError) return false;
  if (lib.isRecoverableError(err)) return true;
  return /no leader|leader changed|request timed out|too many requests|not capable|connection/i.test(err.message);
}

/**
 * Whether a failed call certainly never reached etcd, so that giving up
 * changed nothing and sending it again cannot apply it twice. Only failures
 * that prove it: a member skipped before the call (HostResting), a closed
 * client, no connection to send it on (grpc-js fails the pick, or the
 * deadline passes while still waiting for one), a stream the server refused
 * unread (HTTP/2 REFUSED_STREAM), and etcd's own "too many requests", which
 * it answers before proposing. Everything else that fails after the call
 * started (a cut connection, a deadline, "request timed out", "leader
 * changed") may have been applied.
 */
export function neverSent(err: unknown): boolean {
  if (err instanceof HostResting) return true;
  if (!(err instanceof Error)) return false;
  if (etcd3Loaded() && err instanceof etcd3().ClientClosedError) return true;
  return NEVER_SENT.test(err.message);
}

const NEVER_SENT =
  /No connection established|Stream refused by server|Waiting for LB pick|etcdserver: too many requests/;

/** The LilioError for a failed etcd call. */
export function etcdFailure(err: unknown, endpoints: string[]): LilioError {
  if (err instanceof LilioError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const where = `etcd (${endpoints.join(', ')})`;
  const lib = etcd3();
  if (err instanceof lib.ClientClosedError) return new UnavailableError('the etcd metadata store is closed');
  if (/database space exceeded/.test(message)) return new NoSpaceError(`${where} is out of space: ${message}`);
  if (
    err instanceof lib.EtcdPermissionDeniedError ||
    err instanceof lib.EtcdAuthenticationFailedError ||
    err instanceof lib.GRPCUnauthenticatedError
  ) {
    return new PermissionError(`${where} refused access: ${message}`);
  }
  if (err instanceof lib.GRPCInvalidArgumentError && /too many operations|too large/.test(message)) {
    return new UnsupportedError(`${where} refused a transaction as too big (check --max-txn-ops): ${message}`);
  }
  if (err instanceof lib.GRPCDeadlineExceededError || /request timed out/.test(message)) {
    return new TimeoutError(`${where} did not answer in time: ${message}`);
  }
  return new UnavailableError(`${where} is unavailable: ${message}`, { cause: err });
}

export function decode<T>(value: Buffer, what: string): T {
  try {
    return JSON.parse(value.toString('utf8')) as T;
  } catch (err) {
    throw new IntegrityError(`etcd holds a value for ${what} that is not valid JSON: ${(err as Error).message}`);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ReadResult {
  responses: IRangeResponse[];
  revision: number;
}

/** Requests to one etcd cluster, with deadlines and retries, answering LilioErrors. */
interface PendingRead {
  requests: IRangeRequest[];
  deadline: number;
  resolve(result: ReadResult): void;
  reject(err: unknown): void;
}

export class EtcdConnection {
  readonly client: Etcd3;
  private closed = false;
  private pending: PendingRead[] | undefined;
  private pendingOps = 0;

  constructor(readonly options: EtcdStoreOptions) {
    this.client = createClient(options);
  }

  /** When a call starting now must have finished. */
  deadline(): number {
    return Date.now() + this.options.requestTimeoutMs;
  }

  /**
   * Range reads, all at one revision: one transaction when they fit in one,
   * otherwise the first transaction fixes the revision and the rest read at it.
   */
  async read(requests: IRangeRequest[], revision?: number, deadline = this.deadline()): Promise<ReadResult> {
    const max = this.options.maxTxnOps;
    if (requests.length === 0 && revision !== undefined) return { responses: [], revision };
    if (revision === undefined && requests.length <= max / 4) return this.together(requests, deadline);
    const pinned = (r: IRangeRequest) => (revision === undefined ? r : { ...r, revision });
    const first = requests.slice(0, max).map(pinned);
    const head = await this.retrying(deadline, () =>
      this.client.kv.txn({ success: first.map((r) => ({ request_range: r })) }, { deadline }),
    );
    const at = revision ?? Number(head.header.revision);
    const responses = head.responses.map((r) => r.response_range);
    for (let i = max; i < requests.length; i += max) {
      const batch = requests.slice(i, i + max).map((r) => ({ request_range: { ...r, revision: at } }));
      const more = await this.retrying(deadline, () => this.client.kv.txn({ success: batch }, { deadline }));
      responses.push(...more.responses.map((r) => r.response_range));
    }
    return { responses, revision: at };
  }

  /**
   * Small reads issued in the same turn of the event loop go out as one
   * transaction: with many callers at once (a mount serving several
   * processes) one round trip answers them all, and each gets what it would
   * have got alone (a transaction reads at one revision).
   */
  private together(requests: IRangeRequest[], deadline: number): Promise<ReadResult> {
    return new Promise((resolve, reject) => {
      if (!this.pending || this.pendingOps + requests.length > this.options.maxTxnOps) {
        const batch: PendingRead[] = [];
        this.pending = batch;
        this.pendingOps = 0;
        setImmediate(() => {
          if (this.pending === batch) this.pending = undefined;
          void this.sendTogether(batch);
        });
      }
      this.pending.push({ requests, deadline, resolve, reject });
      this.pendingOps += requests.length;
    });
  }

  private async sendTogether(batch: PendingRead[]): Promise<void> {
    const deadline = Math.min(...batch.map((b) => b.deadline));
    try {
      const ops = batch.flatMap((b) => b.requests.map((r) => ({ request_range: r })));
      const answer = await this.retrying(deadline, () => this.client.kv.txn({ success: ops }, { deadline }));
      const revision = Number(answer.header.revision);
      let next = 0;
      for (const caller of batch) {
        const responses = answer.responses.slice(next, next + caller.requests.length).map((r) => r.response_range);
        next += caller.requests.length;
        caller.resolve({ responses, revision });
      }
    } catch (err) {
      for (const caller of batch) caller.reject(err);
    }
  }

  async range(request: IRangeRequest, deadline = this.deadline()): Promise<IRangeResponse> {
    return this.retrying(deadline, () => this.client.kv.range(request, { deadline }));
  }

  /** An idempotent write (no compares, or compares that make a repeat harmless): retried like a read. */
  async write(request: ITxnRequest, deadline = this.deadline()): Promise<ITxnResponse> {
    return this.retrying(deadline, () => this.client.kv.txn(request, { deadline }));
  }

  /** Any other call (leases), retried on transient failures until the deadline. */
  async call<T>(attempt: (deadline: number) => Promise<T>, deadline = this.deadline()): Promise<T> {
    return this.retrying(deadline, () => attempt(deadline));
  }

  /**
   * A transaction, sent until it reaches etcd once: a failure that proves it
   * never left (see neverSent) is retried until the deadline, then thrown as
   * a plain failure; any other transient failure leaves it unknown whether it
   * was applied (AmbiguousCommit), and is not retried here.
   */
  async commit(request: ITxnRequest, deadline = this.deadline()): Promise<ITxnResponse> {
    this.ensureOpen();
    let pause = 25;
    for (;;) {
      try {
        return await this.client.kv.txn(request, { deadline });
      } catch (err) {
        if (this.closed) throw new UnavailableError('the etcd metadata store is closed');
        if (!neverSent(err)) {
          throw isTransient(err) ? new AmbiguousCommit(etcdFailure(err, this.options.endpoints)) : this.failure(err);
        }
        if (Date.now() + pause >= deadline) throw this.failure(err);
        await sleep(pause);
        pause = Math.min(pause * 2, 500);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  ensureOpen(): void {
    if (this.closed) throw new UnavailableError('the etcd metadata store is closed');
  }

  failure(err: unknown): LilioError {
    return etcdFailure(err, this.options.endpoints);
  }

  private async retrying<T>(deadline: number, attempt: () => Promise<T>): Promise<T> {
    this.ensureOpen();
    let pause = 25;
    // What a member said, rather than that members are being skipped for having said it.
    let telling: unknown;
    for (;;) {
      try {
        return await attempt();
      } catch (err) {
        if (this.closed) throw new UnavailableError('the etcd metadata store is closed');
        if (!(err instanceof HostResting)) telling = err;
        if (!isTransient(err) || Date.now() + pause >= deadline) throw this.failure(telling ?? err);
        await sleep(pause);
        pause = Math.min(pause * 2, 500);
      }
    }
  }
}

/** A commit whose answer was lost: it may or may not have been applied (CommitUnknownError, once given up). */
export class AmbiguousCommit extends Error {
  constructor(readonly failure: LilioError) {
    super(failure.message);
  }
}
