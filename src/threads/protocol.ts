import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, type TransferListItem } from 'node:worker_threads';

/** One request to a worker thread and its answer (see pool.ts). */
export interface WorkerRequest {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { message: string; code?: string } };

/** What a handler returns: its result and the buffers to move (not copy) back to the main thread. */
export interface HandlerResult {
  result: unknown;
  transfer?: TransferListItem[];
}

export type Handler = (args: Record<string, unknown>) => HandlerResult;

/**
 * The worker side: answers every request with its handler's result, or with
 * the error it threw (message and errno code only; stacks stay here).
 * Handlers are synchronous on purpose: a worker does one job at a time, and
 * the pool spreads jobs over workers.
 */
export function serveRequests(handlers: Record<string, Handler>): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests runs only inside a worker thread');
  yieldToMainThread();
  port.on('message', (request: WorkerRequest) => {
    let reply: WorkerReply;
    let transfer: TransferListItem[] = [];
    try {
      const handler = handlers[request.op];
      if (!handler) throw new Error(`unknown operation ${request.op}`);
      const answer = handler(request.args);
      reply = { id: request.id, ok: true, result: answer.result };
      transfer = answer.transfer ?? [];
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      reply = { id: request.id, ok: false, error: { message: e?.message ?? String(err), code: e?.code } };
    }
    port.postMessage(reply, transfer);
  });
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
