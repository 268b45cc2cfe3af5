import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, type TransferListItem } from 'node:worker_threads';
import { isLilioError } from '../core/errors.js';

/** One request to a worker thread and its answer (see pool.ts). */
export interface WorkerRequest {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

/** A thrown error as it crosses back: `lilio` marks a LilioError, whose code names its class. */
export interface WireError {
  message: string;
  code?: string;
  lilio?: boolean;
}

/** What a handler returns: its result and the buffers to move (not copy) back to the main thread. */
export interface HandlerResult {
  result: unknown;
  transfer?: TransferListItem[];
}

/**
 * Handlers are synchronous where they can be: a worker does one job at a
 * time, and the pool spreads jobs over workers. One that returns a promise
 * is answered when it settles; requests that arrive meanwhile start at once,
 * so such a handler's requests overlap only at its awaits.
 */
export type Handler = (args: Record<string, unknown>) => HandlerResult | Promise<HandlerResult>;

export interface ServeOptions {
  /**
   * Run below the main thread's priority (default true; see WORKER_NICE).
   * Off for a thread whose answers a FUSE call waits for, such as commits.
   */
  yieldToMain?: boolean;
}

/**
 * The worker side: answers every request with its handler's result, or with
 * the error it threw (message, errno or LilioError code; stacks stay here).
 * A failed request leaves the thread serving the next one.
 */
export function serveRequests(handlers: Record<string, Handler>, options: ServeOptions = {}): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests runs only inside a worker thread');
  if (options.yieldToMain !== false) yieldToMainThread();
  const reply = (reply: WorkerReply, transfer: TransferListItem[] = []) => {
    try {
      port.postMessage(reply, transfer);
    } catch (err) {
      // A result that cannot be cloned: the caller still gets an answer, and this thread lives on.
      port.postMessage({ id: reply.id, ok: false, error: wireError(err) } satisfies WorkerReply);
    }
  };
  const fail = (id: number, err: unknown) => reply({ id, ok: false, error: wireError(err) });
  port.on('message', (request: WorkerRequest) => {
    try {
      const handler = handlers[request.op];
      if (!handler) throw new Error(`unknown operation ${request.op}`);
      const answer = handler(request.args);
      if (answer instanceof Promise) {
        answer.then(
          (done) => reply({ id: request.id, ok: true, result: done.result }, done.transfer),
          (err) => fail(request.id, err),
        );
      } else {
        reply({ id: request.id, ok: true, result: answer.result }, answer.transfer);
      }
    } catch (err) {
      fail(request.id, err);
    }
  });
}

function wireError(err: unknown): WireError {
  const e = err as NodeJS.ErrnoException | undefined;
  const error: WireError = { message: e?.message ?? String(err), code: e?.code };
  if (isLilioError(err)) error.lilio = true;
  return error;
}

/**
 * How much lower a worker thread's priority is than the main thread's (a
 * nice value). The main thread answers every FUSE call. With more busy
 * threads than cores, waking a worker with a message could hand it the
 * core at once and leave the main thread, and the FUSE call it serves,
 * waiting behind a chunk's hashing or disk write; measured on 2 cores, a
 * lower worker priority made those wake-ups 2.5 times cheaper and
 * sequential writes through the mount 15-20% faster. Bulk work can wait a
 * little; a FUSE call cannot.
 */
const WORKER_NICE = 10;

/** Lowers this thread's priority (Linux: setpriority on the thread's own id), where the system allows it. */
function yieldToMainThread(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, WORKER_NICE);
  } catch {
    // Not Linux, or not allowed: the thread keeps the process's priority.
  }
}
