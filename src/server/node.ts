import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LocalBackend } from '../backends/local.js';
import { MAX_CHUNK_SIZE } from '../config/schema.js';
import { ENCRYPTION_OVERHEAD } from '../core/crypto.js';
import { describeError, type ErrorCode, LilioError } from '../core/errors.js';
import { isChunkId } from '../core/names.js';
import { type NodeMetrics, type NodeRoute, NoopNodeMetrics } from '../metrics/node.js';
import { listen } from './listen.js';
import type { TokenSet } from './tokens.js';

/**
 * A storage node: one local backend served over HTTP, so that replicas can
 * live on other machines (the `http` backend is its client).
 *
 *   PUT    /chunks/{id}   store the body (Content-Length required, bounded)   204
 *   GET    /chunks/{id}   the chunk's bytes, streamed                         200 | 404
 *   HEAD   /chunks/{id}   its size in Content-Length                          200 | 404
 *   DELETE /chunks/{id}   remove it; already gone is fine                     204
 *   GET    /chunks        every chunk, one JSON line each, then an end line   200
 *   DELETE /temporary-files?olderThanMs=N   remove temporary files of writes  200
 *                          cut short (older than N ms): progress lines while
 *                          it walks, then {"end":true,"removed":n}
 *   GET    /health        a real write-read-delete probe of the disk          200 | 503
 *   GET    /info          location and capacity                               200
 *
 * Every request needs `Authorization: Bearer <token>`, except GET /health
 * sent without any Authorization header: a liveness probe (compose,
 * systemd, a load balancer) holds no secret, and its answer says only
 * whether the disk works. A wrong token is refused there too. Errors are JSON
 * `{"error":{"code","message"}}` with the LilioError code, so the client
 * rebuilds the same error the backend threw here.
 */
export interface StorageNodeOptions {
  backend: LocalBackend;
  /** The bearer tokens clients may present. */
  tokens: TokenSet;
  /** Largest PUT body accepted: the largest chunk, encrypted. */
  maxChunkBytes?: number;
  /** A client must finish sending its headers within this (slowloris). */
  headersTimeoutMs?: number;
  /** ...and its whole request, body included, within this. */
  requestTimeoutMs?: number;
  /** A connection that moves no byte for this long is dropped (a stalled body, a reader that stopped reading). */
  idleTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs?: number;
  metrics?: NodeMetrics;
}

export const DEFAULT_MAX_CHUNK_BYTES = MAX_CHUNK_SIZE + ENCRYPTION_OVERHEAD;
/** The response header that carries the node's clock, so clients can correct chunk ages for skew. */
export const NODE_TIME_HEADER = 'x-lilio-node-time';

const CHUNK_PREFIX = '/chunks/';
const TEMPORARY_FILES = '/temporary-files';
/**
 * A sweep walks every fan-out directory and may take minutes on a big disk; a line this often
 * keeps the connection from looking idle to the node's idle timeout and to the client's deadline.
 */
const SWEEP_HEARTBEAT_MS = 1_000;
/** How long a refused body may keep arriving (and be discarded) before the connection is dropped. */
const LINGER_MS = 1_000;
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'POST']);

/** HTTP status for each error code; the client reads the code from the body, the status is for humans and proxies. */
const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  NOT_FOUND: 404,
  INVALID: 400,
  NAME_TOO_LONG: 400,
  NO_SPACE: 507,
  UNAVAILABLE: 503,
  READ_ONLY: 503,
  TIMEOUT: 504,
};

class HttpError extends LilioError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

export class StorageNode {
  readonly server: Server;
  private readonly backend: LocalBackend;
  private readonly tokens: TokenSet;
  private readonly maxChunkBytes: number;
  private readonly metrics: NodeMetrics;
  private inFlight = 0;

  constructor(options: StorageNodeOptions) {
    this.backend = options.backend;
    this.tokens = options.tokens;
    this.maxChunkBytes = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
    this.metrics = options.metrics ?? new NoopNodeMetrics();
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    this.server = createServer({
      headersTimeout,
      requestTimeout: options.requestTimeoutMs ?? 120_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      // Node checks the two deadlines above only this often (30 s by default).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, headersTimeout / 2)),
    });
    // No 'timeout' listener: Node destroys a socket that stays idle this long.
    this.server.setTimeout(options.idleTimeoutMs ?? 30_000);
    this.server.on('request', (req, res) => this.serve(req, res, false));
    // Refuse an oversized or unauthorized PUT before the client sends its body.
    this.server.on('checkContinue', (req, res) => this.serve(req, res, true));
    this.server.on('clientError', (err, socket) => this.clientError(err as NodeJS.ErrnoException, socket));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listen(this.server, port, host);
  }

  /** Stops accepting, lets requests in progress finish for up to `graceMs`, then drops what is left. */
  async close(graceMs = 5_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
  }

  private serve(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    // Whatever a request does, it never takes the node down: the last resort drops its connection.
    this.handle(req, res, expectsContinue).catch(() => res.destroy());
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
    const started = performance.now();
    const method = KNOWN_METHODS.has(req.method ?? '') ? req.method! : 'other';
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    const route: NodeRoute = path.startsWith(CHUNK_PREFIX)
      ? 'chunk'
      : path === '/chunks'
        ? 'list'
        : path === TEMPORARY_FILES
          ? 'sweep'
          : path === '/health'
            ? 'health'
            : path === '/info'
              ? 'info'
              : 'other';
    this.metrics.setInFlight(++this.inFlight);
    res.once('close', () => {
      this.metrics.setInFlight(--this.inFlight);
      const status = res.writableFinished ? String(res.statusCode) : 'aborted';
      this.metrics.recordRequest(route, method, status, (performance.now() - started) / 1000);
    });
    res.setHeader(NODE_TIME_HEADER, String(Date.now()));
    try {
      const authorized = this.authorized(req);
      // A probe without credentials gets the anonymous answer; a wrong token is refused even
      // there, so that the http backend's health check tells a bad token from a good node.
      const anonymousProbe = route === 'health' && req.headers.authorization === undefined;
      if (!authorized && !anonymousProbe) {
        res.setHeader('www-authenticate', 'Bearer');
        throw new HttpError(401, 'PERMISSION', 'missing or wrong bearer token');
      }
      switch (route) {
        case 'chunk':
          await this.chunk(req, res, path.slice(CHUNK_PREFIX.length), expectsContinue);
          return;
        case 'list':
          allow(req, res, 'GET');
          await this.list(res, query < 0 ? '' : url.slice(query + 1));
          return;
        case 'sweep':
          allow(req, res, 'DELETE');
          await this.sweep(res, query < 0 ? '' : url.slice(query + 1));
          return;
        case 'health':
          allow(req, res, 'GET');
          await this.health(res, authorized);
          return;
        case 'info':
          allow(req, res, 'GET');
          sendJson(res, 200, await this.backend.info());
          return;
        default:
          throw new HttpError(404, 'NOT_FOUND', `no such route: ${path.slice(0, 80)}`);
      }
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private async chunk(req: IncomingMessage, res: ServerResponse, id: string, expectsContinue: boolean): Promise<void> {
    allow(req, res, 'GET', 'HEAD', 'PUT', 'DELETE');
    // Checked here, before any backend call: nothing of an invalid id ever reaches the disk.
    if (!isChunkId(id)) throw new HttpError(400, 'INVALID', `invalid chunk id "${id.slice(0, 80)}"`);
    switch (req.method) {
      case 'PUT': {
        const size = this.announcedSize(req);
        if (expectsContinue) res.writeContinue();
        // Not destroyed when the write fails halfway (a full disk): the node still answers, and
        // refuseBody discards the rest of the body, instead of a reset connection telling nothing.
        const body = { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) };
        await this.backend.putStream(id, body, size);
        this.metrics.recordBytes('received', size);
        res.writeHead(204).end();
        return;
      }
      case 'GET': {
        const { size, stream } = await this.backend.getStream(id);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        try {
          await pipeline(stream, res);
          this.metrics.recordBytes('sent', size);
        } catch {
          // The client went away mid-body; pipeline has closed the file. Nothing to answer.
        }
        return;
      }
      case 'HEAD': {
        const size = await this.backend.stat(id);
        if (size === undefined) throw new HttpError(404, 'NOT_FOUND', `no chunk ${id}`);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size }).end();
        return;
      }
      default:
        await this.backend.delete(id);
        res.writeHead(204).end();
    }
  }

  /** The body's length, which must be announced and within bounds: nothing is read otherwise. */
  private announcedSize(req: IncomingMessage): number {
    if (req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] === undefined) {
      throw new HttpError(411, 'INVALID', 'a chunk PUT needs a Content-Length');
    }
    const size = Number(req.headers['content-length']);
    if (!Number.isSafeInteger(size) || size < 0) throw new HttpError(400, 'INVALID', 'bad Content-Length');
    if (size > this.maxChunkBytes) {
      throw new HttpError(413, 'INVALID', `a chunk of ${size} bytes is larger than the ${this.maxChunkBytes} allowed`);
    }
    return size;
  }

  /**
   * Streams the listing as JSON lines, waiting whenever the client reads
   * slower than the disk lists. The last line says how many came, so a
   * client can tell a complete listing from a cut connection.
   */
  private async list(res: ServerResponse, queryString: string): Promise<void> {
    const detail = new URLSearchParams(queryString).get('detail') === '1';
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const controller = new AbortController();
    res.once('close', () => controller.abort());
    const signal = controller.signal;
    let count = 0;
    try {
      const source = detail ? this.backend.listEntries({ signal }) : this.backend.list({ signal });
      for await (const item of source) {
        if (res.destroyed) return;
        const line = typeof item === 'string' ? `{"id":"${item}"}\n` : `${JSON.stringify(item)}\n`;
        count++;
        if (!res.write(line)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
      }
      res.end(`${JSON.stringify({ end: true, count })}\n`);
    } catch (err) {
      // The status is long sent: an error line instead of the end line tells the client.
      if (!res.destroyed) res.end(`${JSON.stringify({ error: errorBody(err) })}\n`);
    }
  }

  /**
   * Removes temporary files older than the client says (its gc grace period), with the same sweep
   * `lilio node` runs at start. Streamed like the listing: the status goes out first, then a
   * line every second while the disk is walked, then the count (or an error line).
   */
  private async sweep(res: ServerResponse, queryString: string): Promise<void> {
    const olderThanMs = Number(new URLSearchParams(queryString).get('olderThanMs') ?? Number.NaN);
    if (!Number.isSafeInteger(olderThanMs) || olderThanMs < 0) {
      throw new HttpError(400, 'INVALID', 'olderThanMs must be a whole number of milliseconds');
    }
    const controller = new AbortController();
    res.once('close', () => controller.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const heartbeat = setInterval(() => res.write('{"sweeping":true}\n'), SWEEP_HEARTBEAT_MS);
    try {
      const removed = await this.backend.sweepTemporaryFiles(olderThanMs, { signal: controller.signal });
      if (!res.destroyed) res.end(`${JSON.stringify({ end: true, removed })}\n`);
    } catch (err) {
      if (!res.destroyed) res.end(`${JSON.stringify({ error: errorBody(err) })}\n`);
    } finally {
      clearInterval(heartbeat);
    }
  }

  private probe: Promise<Awaited<ReturnType<LocalBackend['health']>>> | undefined;

  /**
   * A write-read-delete probe of the disk. Probes asked for while one runs
   * share it, so unauthenticated callers cannot multiply disk writes; the
   * error's detail (paths) goes only to a caller with the token.
   */
  private async health(res: ServerResponse, detailed: boolean): Promise<void> {
    this.probe ??= this.backend.health().finally(() => {
      this.probe = undefined;
    });
    const health = await this.probe;
    sendJson(res, health.ok ? 200 : 503, detailed ? health : { ok: health.ok });
  }

  private authorized(req: IncomingMessage): boolean {
    return this.tokens.accepts(req.headers.authorization);
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const status =
      err instanceof HttpError ? err.status : err instanceof LilioError ? (STATUS_OF[err.code] ?? 500) : 500;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (req.method === 'PUT' && !req.complete) refuseBody(req, res);
    if (req.method === 'HEAD') {
      res.writeHead(status).end();
      return;
    }
    sendJson(res, status, { error: errorBody(err) });
  }

  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    this.metrics.recordClientError();
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  }
}

/**
 * A PUT answered before its body was read. A client that waited for 100
 * Continue sends no body: the connection closes after the answer. One that
 * sent the body anyway gets a moment to read the answer while Node discards
 * what still arrives (closing at once would reset the connection and could
 * destroy the answer in flight), then the connection is dropped: nothing of
 * the body is kept, and a huge one is not read to its end.
 */
function refuseBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.expect !== undefined) {
    res.setHeader('connection', 'close');
    return;
  }
  res.once('finish', () => {
    if (req.complete) return;
    const socket = req.socket;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  });
}

function allow(req: IncomingMessage, res: ServerResponse, ...methods: string[]): void {
  if (!methods.includes(req.method ?? '')) {
    res.setHeader('allow', methods.join(', '));
    throw new HttpError(405, 'INVALID', `${req.method} is not allowed here (allowed: ${methods.join(', ')})`);
  }
}

function errorBody(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof LilioError) return { code: err.code, message: err.message };
  return { code: 'UNAVAILABLE', message: describeError(err) };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
