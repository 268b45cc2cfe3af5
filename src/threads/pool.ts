import { type TransferListItem, Worker } from 'node:worker_threads';
import { type ErrorCode, reviveLilioError, UnavailableError } from '../core/errors.js';
import type { WireError, WorkerReply, WorkerRequest } from './protocol.js';

/**
 * A few worker threads that take requests and answer them, for the work of
 * the data path that would otherwise sit on the main thread: hashing and
 * encrypting chunks, and local disk I/O. The main thread is where every FUSE
 * call is answered, so each millisecond it spends on a chunk is a millisecond
 * added to some `write` or `read`; here it only posts a message and takes the
 * answer. Buffers travel without copies: SharedArrayBuffer views are shared,
 * and transferred ArrayBuffers move.
 *
 * Workers start on first use (a CLI command that touches no chunk pays
 * nothing), are unreferenced while idle (they never keep a process alive),
 * and one that dies fails its pending requests with UnavailableError and is
 * replaced by the next request.
 */
/** How long close() waits for its threads to stop. */
const STOP_WAIT_MS = 1_000;

export class WorkerPool {
  private readonly slots: Array<Slot | undefined>;
  private nextId = 1;
  private closed = false;

  /**
   * @param moduleUrl import.meta.url of the module that names the worker (its sibling).
   * @param name the worker module's file name without extension ("codec-worker").
   * @param workerData handed to every worker this pool starts (node:worker_threads' workerData).
   */
  constructor(
    private readonly moduleUrl: string,
    private readonly name: string,
    size: number,
    private readonly workerData?: unknown,
  ) {
    this.slots = Array.from({ length: Math.max(1, size) }, () => undefined);
  }

  /** Sends one request to the least busy worker; resolves with its result, rejects with its error. */
  run<T>(op: string, args: Record<string, unknown>, transfer: readonly TransferListItem[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new UnavailableError(`the ${this.name} pool is closed`));
    const slot = this.pick();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      const request: WorkerRequest = { id, op, args };
      try {
        slot.worker.postMessage(request, transfer as TransferListItem[]);
      } catch (err) {
        // Arguments that cannot be cloned: this request fails, the worker never saw it.
        slot.pending.delete(id);
        if (slot.pending.size === 0) slot.worker.unref();
        reject(err);
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const workers = this.slots.filter((s): s is Slot => s !== undefined);
    this.slots.fill(undefined);
    // Waited for, with a timer that keeps the process alive meanwhile and bounds the wait. Without
    // it, a process whose only remaining work was this stop could run out of referenced handles and
    // exit at once, before its caller's next line (the CLI exited 0, its error message unwritten); and
    // a thread stopped while it is still starting may never report its exit.
    const stopped = Promise.all(workers.map((slot) => slot.worker.terminate()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private pick(): Slot {
    let best: Slot | undefined;
    for (let i = 0; i < this.slots.length; i++) {
      let slot = this.slots[i];
      if (!slot) {
        slot = this.spawn(i);
        this.slots[i] = slot;
      }
      if (slot.pending.size === 0) return slot;
      if (!best || slot.pending.size < best.pending.size) best = slot;
    }
    return best!;
  }

  private spawn(index: number): Slot {
    const worker = startWorker(this.moduleUrl, this.name, this.workerData);
    worker.unref();
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (reply: WorkerReply) => {
      const waiter = slot.pending.get(reply.id);
      if (!waiter) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) worker.unref();
      if (reply.ok) waiter.resolve(reply.result);
      else waiter.reject(reviveError(reply.error));
    });
    const fail = (why: string) => {
      if (this.slots[index] === slot) this.slots[index] = undefined;
      const error = new UnavailableError(`${this.name} thread ${why}`);
      for (const waiter of slot.pending.values()) waiter.reject(error);
      slot.pending.clear();
    };
    worker.on('error', (err) => fail(`failed: ${err.message}`));
    worker.on('exit', (code) => fail(`exited with code ${code}`));
    return slot;
  }
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (value: unknown) => void; reject: (reason: unknown) => void }>;
}

/** An error that crossed the thread boundary: message and errno-style code survive, a LilioError keeps its class. */
function reviveError(error: WireError): Error {
  if (error.lilio && error.code) return reviveLilioError(error.code as ErrorCode, error.message);
  const revived = new Error(error.message) as NodeJS.ErrnoException;
  if (error.code) revived.code = error.code;
  return revived;
}

/**
 * Workers are sibling modules. Built, they are .js files; run from source
 * (tests, scripts under tsx) they are .ts files, which a worker thread can
 * only load once tsx is registered inside it, so a two-line bootstrap does
 * that first.
 */
function startWorker(moduleUrl: string, name: string, workerData: unknown): Worker {
  if (moduleUrl.endsWith('.ts')) {
    const entry = new URL(`./${name}.ts`, moduleUrl).href;
    const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(bootstrap, { eval: true, execArgv: [], workerData });
  }
  // No inherited execArgv: the process's own flags (--input-type, --eval...) are not the worker's.
  return new Worker(new URL(`./${name}.js`, moduleUrl), { execArgv: [], workerData });
}
