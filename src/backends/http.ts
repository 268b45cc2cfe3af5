import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import { ConfigError, describeError, LilioError, TimeoutError, UnavailableError } from '../core/errors.js';
import { validateChunkId } from '../core/names.js';
import type { BackendHealth, BackendInfo, CallOptions, ChunkEntry, StorageBackend } from './backend.js';
import { nodeError } from './http-errors.js';

export interface HttpBackendOptions {
  name: string;
  /** Base URL of a `lilio node`, e.g. http://10.0.0.7:7400 (a path prefix is kept). */
  url: string;
  token: string;
  /** Deadline of every call (for a listing: of every wait for the next bytes). */
  timeoutMs?: number;
}

/** The storage node's clock on every response (src/server/node.ts NODE_TIME_HEADER). */
const NODE_TIME_HEADER = 'x-lilio-node-time';
/** Error bodies are small JSON; anything longer is not one of ours. */
const MAX_ERROR_BODY = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;

interface Exchange {
  res: IncomingMessage;
  /** Aborts the exchange (the response body included) with the caller's or the deadline's reason. */
  signal: AbortSignal;
  /** Re-arms the deadline (a long listing: each wait for bytes gets the full timeout). */
  rearm(): void;
  done(): void;
}

/**
 * A Lilio storage node (`lilio node`) as a backend, over HTTP/1.1 with
 * keep-alive. Every call has a deadline, so a node that accepts connections
 * and never answers costs one timeout, not a hung engine; the caller's signal
 * cuts it shorter. Errors come back as the LilioError the node met (its JSON
 * body carries the code), or as UNAVAILABLE / TIMEOUT when the node cannot be
 * reached.
 */
export class HttpBackend implements StorageBackend {
  readonly name: string;
  readonly type = 'http';
  readonly url: string;
  private readonly base: URL;
  /** The URL's path without its trailing slash, prepended to every route. */
  private readonly prefix: string;
  private readonly authorization: string;
  private readonly timeoutMs: number;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;

  constructor(options: HttpBackendOptions) {
    this.name = options.name;
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new ConfigError(`http backend "${options.name}": "${options.url}" is not a URL`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new ConfigError(`http backend "${options.name}": ${options.url} is not an http(s) URL`);
    }
    this.base = base;
    this.prefix = base.pathname.replace(/\/+$/, '');
    this.url = base.href;
    this.authorization = `Bearer ${options.token}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Sockets are reused across calls (one TCP handshake per connection, not per chunk);
    // the engine keeps a bounded number of chunks in flight, so a few dozen suffice.
    const agentOptions = { keepAlive: true, maxSockets: 64, maxFreeSockets: 16 };
    this.agent = base.protocol === 'https:' ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
    this.send = base.protocol === 'https:' ? httpsRequest : httpRequest;
  }

  async put(id: string, data: Uint8Array, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const ex = await this.exchange('PUT', `/chunks/${id}`, options?.signal, body);
    try {
      await this.expectStatus(ex, 'PUT', 204);
    } finally {
      ex.done();
    }
  }

  async get(id: string, options?: CallOptions): Promise<Buffer> {
    validateChunkId(id);
    const ex = await this.exchange('GET', `/chunks/${id}`, options?.signal);
    try {
      if (ex.res.statusCode !== 200) throw await this.errorOf(ex, 'GET');
      return await this.readBody(ex);
    } finally {
      ex.done();
    }
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    const ex = await this.exchange('DELETE', `/chunks/${id}`, options?.signal);
    try {
      await this.expectStatus(ex, 'DELETE', 204);
    } finally {
      ex.done();
    }
  }

  async stat(id: string, options?: CallOptions): Promise<number | undefined> {
    validateChunkId(id);
    const ex = await this.exchange('HEAD', `/chunks/${id}`, options?.signal);
    try {
      ex.res.resume();
      if (ex.res.statusCode === 404) return undefined;
      if (ex.res.statusCode !== 200) throw this.statusError(ex.res.statusCode ?? 0, 'HEAD', undefined);
      const size = Number(ex.res.headers['content-length']);
      if (!Number.isSafeInteger(size) || size < 0)
        throw new UnavailableError(`backend "${this.name}": HEAD without a size`);
      return size;
    } finally {
      ex.done();
    }
  }

  async *list(options?: CallOptions): AsyncIterable<string> {
    for await (const line of this.listing('/chunks', options?.signal)) yield line.entry.id;
  }

  async *listEntries(options?: CallOptions): AsyncIterable<ChunkEntry> {
    for await (const { entry, skewMs } of this.listing('/chunks?detail=1', options?.signal)) {
      if (typeof entry.size !== 'number' || typeof entry.modifiedMs !== 'number') {
        throw new UnavailableError(`backend "${this.name}": listing entry without size or age`);
      }
      // The node stamps times with its own clock; shift them onto ours.
      yield { id: entry.id, size: entry.size, modifiedMs: entry.modifiedMs + skewMs };
    }
  }

  /** The node removes temporary files of writes cut short (see StorageNode.sweep); resolves with how many went. */
  async sweepTemporaryFiles(olderThanMs: number, options?: CallOptions): Promise<number> {
    const what = 'DELETE /temporary-files';
    const ex = await this.exchange(
      'DELETE',
      `/temporary-files?olderThanMs=${Math.floor(olderThanMs)}`,
      options?.signal,
    );
    try {
      if (ex.res.statusCode !== 200) throw await this.errorOf(ex, what);
      for await (const line of this.jsonLines(ex, what)) {
        if (line.end && typeof line.removed === 'number') return line.removed;
      }
      throw new UnavailableError(`backend "${this.name}": the sweep's answer was cut off`);
    } finally {
      ex.done();
      if (!ex.res.complete) ex.res.destroy();
    }
  }

  async health(options?: CallOptions): Promise<BackendHealth> {
    const started = performance.now();
    try {
      const ex = await this.exchange('GET', '/health', options?.signal);
      try {
        const body = (await this.readJson(ex)) as Partial<BackendHealth> & { error?: unknown };
        const latencyMs = performance.now() - started;
        if (ex.res.statusCode === 200 && body.ok === true) return { ok: true, latencyMs };
        const error =
          typeof body.error === 'string'
            ? body.error
            : describeError(this.statusError(ex.res.statusCode ?? 0, 'GET /health', body));
        return { ok: false, latencyMs, error };
      } finally {
        ex.done();
      }
    } catch (err) {
      return { ok: false, latencyMs: performance.now() - started, error: describeError(err) };
    }
  }

  async info(options?: CallOptions): Promise<BackendInfo> {
    const ex = await this.exchange('GET', '/info', options?.signal);
    try {
      if (ex.res.statusCode !== 200) throw await this.errorOf(ex, 'GET /info');
      const body = (await this.readJson(ex)) as Partial<BackendInfo>;
      const info: BackendInfo = { name: this.name, type: this.type, location: this.url };
      if (typeof body.totalBytes === 'number') info.totalBytes = body.totalBytes;
      if (typeof body.freeBytes === 'number') info.freeBytes = body.freeBytes;
      return info;
    } finally {
      ex.done();
    }
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  // ---- the wire ----

  /**
   * Sends one request and resolves when the response headers arrive. The
   * deadline keeps running until `done()`, so reading the body is bounded too.
   * A reused keep-alive socket that the node closed meanwhile fails at once;
   * that one case is retried (every call here is idempotent).
   */
  private async exchange(method: string, path: string, callerSignal?: AbortSignal, body?: Buffer): Promise<Exchange> {
    callerSignal?.throwIfAborted();
    const deadline = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          deadline.abort(
            new TimeoutError(`backend "${this.name}": no answer to ${method} ${path} within ${this.timeoutMs} ms`),
          ),
        this.timeoutMs,
      );
    };
    const signal = callerSignal ? AbortSignal.any([callerSignal, deadline.signal]) : deadline.signal;
    arm();
    const done = () => clearTimeout(timer);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await this.once(method, path, signal, body);
          return { res, signal, rearm: arm, done };
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          if (attempt === 0 && (err as { reusedSocket?: boolean }).reusedSocket) continue;
          throw new UnavailableError(`backend "${this.name}": cannot reach ${this.url}: ${describeError(err)}`, {
            cause: err,
          });
        }
      }
    } catch (err) {
      done();
      throw err;
    }
  }

  private once(method: string, path: string, signal: AbortSignal, body?: Buffer): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { authorization: this.authorization };
      if (body) {
        headers['content-length'] = body.byteLength;
        headers['content-type'] = 'application/octet-stream';
      }
      const req = this.send(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          path: this.prefix + path,
          method,
          headers,
          agent: this.agent,
          signal,
        },
        resolve,
      );
      req.once('error', (err) => {
        // Only a request that died on a socket the agent reused is worth one more try.
        const code = (err as NodeJS.ErrnoException).code;
        const stale = req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE');
        reject(Object.assign(err, { reusedSocket: stale }));
      });
      req.end(body);
    });
  }

  private async expectStatus(ex: Exchange, what: string, status: number): Promise<void> {
    if (ex.res.statusCode === status) {
      ex.res.resume();
      return;
    }
    throw await this.errorOf(ex, what);
  }

  /** The body as one Buffer, sized by Content-Length up front (no concatenation of pieces). */
  private async readBody(ex: Exchange): Promise<Buffer> {
    const announced = Number(ex.res.headers['content-length']);
    try {
      if (!Number.isSafeInteger(announced) || announced < 0) {
        const pieces: Buffer[] = [];
        for await (const piece of ex.res) pieces.push(piece as Buffer);
        return Buffer.concat(pieces);
      }
      const out = Buffer.allocUnsafe(announced);
      let filled = 0;
      for await (const piece of ex.res) {
        const chunk = piece as Buffer;
        if (filled + chunk.length > announced) throw new UnavailableError('more bytes than announced');
        chunk.copy(out, filled);
        filled += chunk.length;
      }
      if (filled !== announced) throw new UnavailableError(`${filled} of ${announced} bytes arrived`);
      return out;
    } catch (err) {
      throw this.bodyError(ex, err);
    }
  }

  private async readJson(ex: Exchange): Promise<unknown> {
    let text = '';
    try {
      for await (const piece of ex.res) {
        text += (piece as Buffer).toString('utf8');
        if (text.length > MAX_ERROR_BODY) break;
      }
    } catch (err) {
      throw this.bodyError(ex, err);
    }
    try {
      return JSON.parse(text);
    } catch {
      return {};
    }
  }

  private bodyError(ex: Exchange, err: unknown): unknown {
    if (ex.signal.aborted) return ex.signal.reason;
    if (err instanceof LilioError) return new UnavailableError(`backend "${this.name}": ${err.message}`);
    return new UnavailableError(`backend "${this.name}": response cut off: ${describeError(err)}`, { cause: err });
  }

  private async errorOf(ex: Exchange, what: string): Promise<LilioError> {
    const body = ex.res.statusCode === 200 ? {} : await this.readJson(ex).catch(() => ({}));
    return this.statusError(ex.res.statusCode ?? 0, what, body);
  }

  private statusError(status: number, what: string, body: unknown): LilioError {
    return nodeError(`backend "${this.name}"`, this.url, status, what, body);
  }

  private parseLine(text: string): ListingLine {
    try {
      return JSON.parse(text) as ListingLine;
    } catch {
      throw new UnavailableError(`backend "${this.name}": unreadable listing line "${text.slice(0, 80)}"`);
    }
  }

  /** JSON lines from the node's listing, checked against its closing count. */
  private async *listing(
    path: string,
    callerSignal: AbortSignal | undefined,
  ): AsyncGenerator<{ entry: { id: string; size?: number; modifiedMs?: number }; skewMs: number }> {
    const ex = await this.exchange('GET', path, callerSignal);
    try {
      if (ex.res.statusCode !== 200) throw await this.errorOf(ex, 'GET /chunks');
      const nodeTime = Number(ex.res.headers[NODE_TIME_HEADER]);
      const skewMs = Number.isFinite(nodeTime) ? Date.now() - nodeTime : 0;
      let count = 0;
      for await (const line of this.jsonLines(ex, 'GET /chunks')) {
        if (line.end) {
          if (line.count !== count) {
            throw new UnavailableError(`backend "${this.name}": listing of ${line.count} delivered ${count}`);
          }
          return;
        }
        if (typeof line.id !== 'string') throw new UnavailableError(`backend "${this.name}": bad listing line`);
        count++;
        yield { entry: line as { id: string }, skewMs };
      }
      throw new UnavailableError(`backend "${this.name}": the listing was cut off after ${count}`);
    } finally {
      ex.done();
      // A consumer that stopped early: drop the connection rather than read the rest.
      if (!ex.res.complete) ex.res.destroy();
    }
  }

  /**
   * The lines of a streamed JSON-lines answer, parsed; an error line throws. Each wait for
   * the node's next bytes gets the full deadline, the consumer's pace none of it.
   */
  private async *jsonLines(ex: Exchange, what: string): AsyncGenerator<ListingLine> {
    const pieces = ex.res[Symbol.asyncIterator]();
    let rest = '';
    for (;;) {
      ex.rearm();
      let next: IteratorResult<Buffer>;
      try {
        next = await pieces.next();
      } catch (err) {
        throw this.bodyError(ex, err);
      } finally {
        ex.done();
      }
      if (next.done) return;
      rest += next.value.toString('utf8');
      let newline = rest.indexOf('\n');
      while (newline >= 0) {
        const line = this.parseLine(rest.slice(0, newline));
        rest = rest.slice(newline + 1);
        if (line.error) throw this.statusError(500, what, line);
        yield line;
        newline = rest.indexOf('\n');
      }
    }
  }
}

interface ListingLine {
  id?: string;
  size?: number;
  modifiedMs?: number;
  end?: boolean;
  count?: number;
  /** The end line of a sweep. */
  removed?: number;
  error?: unknown;
}
