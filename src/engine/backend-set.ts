import type { StorageBackend } from '../backends/backend.js';
import { describeError, type ErrorCode, LilioError, TimeoutError, UnavailableError } from '../core/errors.js';
import type { Collector } from '../metrics/collector.js';

/** Errors that say the backend itself is unwell, as opposed to "no such chunk" or "bad id". */
function isHealthFailure(err: unknown): boolean {
  if (!(err instanceof LilioError)) return true;
  return err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' || err.code === 'NO_SPACE' || err.code === 'PERMISSION';
}

interface BackendState {
  backend: StorageBackend;
  healthy: boolean;
  consecutiveFailures: number;
  downSince?: number;
  /** The code of the last failure: why a backend is down (NO_SPACE is worth telling apart). */
  lastFailureCode?: ErrorCode;
}

export interface BackendSetOptions {
  /** Deadline of any one call. */
  timeoutMs: number;
  /** How often a backend marked down is probed. */
  probeIntervalMs: number;
  /** Failures in a row that mark a backend down. */
  failuresToMarkDown?: number;
}

/**
 * The configured backends with their health. Every call goes through here so
 * that each gets a deadline, is measured, and teaches us whether the backend
 * is up: a backend that keeps failing is marked down and skipped (writes fail
 * fast over to the quorum rule, reads try it last) until a background probe
 * finds it well again.
 */
export class BackendSet {
  private readonly states = new Map<string, BackendState>();
  private readonly failuresToMarkDown: number;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly recoveryListeners: Array<(name: string) => void> = [];

  constructor(
    backends: readonly StorageBackend[],
    private readonly collector: Collector,
    private readonly options: BackendSetOptions,
  ) {
    for (const backend of backends) {
      this.states.set(backend.name, { backend, healthy: true, consecutiveFailures: 0 });
      collector.recordBackendHealth(backend.name, true);
    }
    this.failuresToMarkDown = options.failuresToMarkDown ?? 3;
  }

  get names(): string[] {
    return [...this.states.keys()];
  }

  backend(name: string): StorageBackend | undefined {
    return this.states.get(name)?.backend;
  }

  isHealthy(name: string): boolean {
    return this.states.get(name)?.healthy ?? false;
  }

  /** Why a backend marked down is down: the code of the failure that marked it, if it was a LilioError. */
  downCode(name: string): ErrorCode | undefined {
    const state = this.states.get(name);
    return state && !state.healthy ? state.lastFailureCode : undefined;
  }

  /** Called with a backend's name when it comes back after being down. */
  onRecovery(listener: (name: string) => void): void {
    this.recoveryListeners.push(listener);
  }

  async put(name: string, id: string, data: Uint8Array): Promise<void> {
    await this.call(name, 'put', (backend, signal) => backend.put(id, data, { signal }));
    this.collector.recordBackendBytes('written', data.byteLength);
  }

  async get(name: string, id: string, timeoutMs?: number): Promise<Buffer> {
    const data = await this.call(name, 'get', (backend, signal) => backend.get(id, { signal }), timeoutMs);
    this.collector.recordBackendBytes('read', data.byteLength);
    return data;
  }

  delete(name: string, id: string): Promise<void> {
    return this.call(name, 'delete', (backend, signal) => backend.delete(id, { signal }));
  }

  stat(name: string, id: string): Promise<number | undefined> {
    return this.call(name, 'stat', (backend, signal) => backend.stat(id, { signal }));
  }

  private async call<T>(
    name: string,
    op: 'put' | 'get' | 'delete' | 'stat',
    run: (backend: StorageBackend, signal: AbortSignal) => Promise<T>,
    timeoutMs = this.options.timeoutMs,
  ): Promise<T> {
    const state = this.states.get(name);
    if (!state) throw new UnavailableError(`backend "${name}" is not configured`);
    const started = performance.now();
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new TimeoutError(`backend "${name}" did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      const result = await Promise.race([run(state.backend, controller.signal), deadline]);
      this.collector.recordBackendCall(name, op, (performance.now() - started) / 1000, true);
      this.succeeded(state);
      return result;
    } catch (err) {
      this.collector.recordBackendCall(name, op, (performance.now() - started) / 1000, false);
      if (isHealthFailure(err)) this.failed(state, err);
      else this.succeeded(state);
      throw err instanceof LilioError
        ? err
        : new UnavailableError(`backend "${name}": ${describeError(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private succeeded(state: BackendState): void {
    state.consecutiveFailures = 0;
    if (!state.healthy) this.markUp(state);
  }

  private failed(state: BackendState, err: unknown): void {
    state.consecutiveFailures++;
    state.lastFailureCode = err instanceof LilioError ? err.code : undefined;
    if (state.healthy && state.consecutiveFailures >= this.failuresToMarkDown) {
      state.healthy = false;
      state.downSince = Date.now();
      this.collector.recordBackendHealth(state.backend.name, false);
      this.scheduleProbe();
    }
  }

  private markUp(state: BackendState): void {
    state.healthy = true;
    state.downSince = undefined;
    this.collector.recordBackendHealth(state.backend.name, true);
    for (const listener of this.recoveryListeners) listener(state.backend.name);
  }

  private scheduleProbe(): void {
    if (this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probeDown();
    }, this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** Probes every backend marked down; reschedules while any stays down. */
  async probeDown(): Promise<void> {
    const down = [...this.states.values()].filter((s) => !s.healthy);
    await Promise.all(
      down.map(async (state) => {
        const health = await state.backend
          .health({ signal: AbortSignal.timeout(this.options.timeoutMs) })
          .catch((err) => ({ ok: false, latencyMs: 0, error: describeError(err) }));
        if (health.ok) this.markUp(state);
      }),
    );
    if ([...this.states.values()].some((s) => !s.healthy)) this.scheduleProbe();
  }

  /** Probes every backend now (status command, start-up). */
  async probeAll(): Promise<Map<string, { ok: boolean; latencyMs: number; error?: string }>> {
    const results = new Map<string, { ok: boolean; latencyMs: number; error?: string }>();
    await Promise.all(
      [...this.states.values()].map(async (state) => {
        const health = await state.backend
          .health({ signal: AbortSignal.timeout(this.options.timeoutMs) })
          .catch((err) => ({ ok: false, latencyMs: 0, error: describeError(err) }));
        results.set(state.backend.name, health);
        if (health.ok && !state.healthy) this.markUp(state);
        if (!health.ok && state.healthy) {
          state.healthy = false;
          state.downSince = Date.now();
          this.collector.recordBackendHealth(state.backend.name, false);
          this.scheduleProbe();
        }
      }),
    );
    return results;
  }

  async close(): Promise<void> {
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    await Promise.all([...this.states.values()].map((s) => s.backend.close()));
  }
}
