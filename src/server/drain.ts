import type { Server, ServerResponse } from 'node:http';

/**
 * Graceful shutdown of an HTTP server (the API and the S3 endpoint alike):
 * requests in progress are tracked; on close the listener stops, idle
 * connections go at once, responses still to come tell their clients not to
 * reuse the connection, and whatever is left after the grace period is cut.
 */
export class RequestDrain {
  private readonly active = new Set<ServerResponse>();
  private idleWaiters: Array<() => void> = [];
  stopping = false;

  constructor(private readonly server: Server) {}

  get activeRequests(): number {
    return this.active.size;
  }

  /** Counts a request until its response closes. */
  track(res: ServerResponse): void {
    this.active.add(res);
    res.once('close', () => {
      this.active.delete(res);
      if (this.active.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    });
    if (this.stopping) res.setHeader('connection', 'close');
  }

  async close(graceMs: number): Promise<void> {
    this.stopping = true;
    // Responses still to come tell their clients not to reuse the connection.
    for (const res of this.active) if (!res.headersSent) res.setHeader('connection', 'close');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.server.closeAllConnections();
    await closed;
  }
}
