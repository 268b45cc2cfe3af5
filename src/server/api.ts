import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError, LilioError } from '../core/errors.js';
import type { Lilio } from '../engine/lilio.js';
import { type HttpMetrics, NoopHttpMetrics } from '../metrics/http.js';
import {
  adminRoute,
  bucketRoute,
  methodNotAllowed,
  objectRoute,
  type RouteContext,
  rootRoute,
  sendJson,
} from './api-routes.js';
import { RequestDrain } from './drain.js';
import { ApiError, errorResponse } from './errors.js';
import { listen } from './listen.js';
import { parseTarget, ROUTE_LABELS, routeOf, splitTarget } from './request.js';
import type { TokenSet } from './tokens.js';

export interface ApiServerOptions {
  tokens: TokenSet;
  metrics?: HttpMetrics;
  /** Where failures worth an operator's attention go (5xx answers, cut streams). */
  log?: (line: string) => void;
}

/** A client gets this long to send its headers (slow-loris guard). */
const HEADERS_TIMEOUT_MS = 30_000;
/**
 * An idle socket is dropped after this long. There is deliberately no limit
 * on a whole request: a 100 GiB upload takes as long as it takes, but one
 * that stops moving for two minutes is abandoned (and its writer aborted).
 */
const IDLE_TIMEOUT_MS = 120_000;

/**
 * The HTTP API: path-style routes over the engine, streaming both ways, no
 * request body held in memory beyond the chunk being filled. Every request
 * but /health needs a bearer token; every failure is a JSON error body with
 * the status from errors.ts; nothing a client sends can crash the process.
 */
export class ApiServer {
  readonly server: Server;
  private readonly metrics: HttpMetrics;
  private readonly log: (line: string) => void;
  private readonly drain: RequestDrain;
  private readonly startedAt = Date.now();

  constructor(
    private readonly lilio: Lilio,
    private readonly options: ApiServerOptions,
  ) {
    this.metrics = options.metrics ?? new NoopHttpMetrics();
    this.log = options.log ?? (() => undefined);
    this.server = createServer((req, res) => void this.handle(req, res, false));
    // Expect: 100-continue is answered only once the request is known to be acceptable.
    this.server.on('checkContinue', (req, res) => void this.handle(req, res, true));
    this.server.on('checkExpectation', (req, res) => {
      this.fail(req, res, new ApiError('EXPECTATION_FAILED', 'the only expectation served is Expect: 100-continue'));
    });
    this.server.on('clientError', (err, socket) => this.clientError(err as NodeJS.ErrnoException, socket));
    this.server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = 0;
    this.server.timeout = IDLE_TIMEOUT_MS;
    this.drain = new RequestDrain(this.server);
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listen(this.server, port, host);
  }

  /**
   * Graceful stop: no new connections, idle ones closed, requests in progress
   * get `graceMs` to finish; what is still running then is cut off (an upload
   * cut off commits nothing).
   */
  close(graceMs = 10_000): Promise<void> {
    return this.drain.close(graceMs);
  }

  private facts(): Record<string, unknown> {
    return {
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      activeRequests: this.drain.activeRequests,
      pid: process.pid,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    let route: keyof typeof ROUTE_LABELS = 'unknown';
    res.once('close', () => {
      // 499 (nginx's "client closed request"): the client left before any answer was sent.
      const status = res.headersSent ? res.statusCode : 499;
      this.metrics.recordRequest(ROUTE_LABELS[route], method, status, (performance.now() - started) / 1000);
    });
    this.drain.track(res);
    try {
      const { path, query } = splitTarget(req.url ?? '');
      route = routeOf(path);
      if (route === 'health') {
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, ['GET', 'HEAD']);
        if (this.drain.stopping) throw new ApiError('SHUTTING_DOWN', 'the server is shutting down');
        sendJson(res, 200, { status: 'ok' });
        return;
      }
      // The token is checked before anything else about the request is, so an unauthenticated
      // client learns nothing of which names are valid or exist.
      if (!this.options.tokens.accepts(req.headers.authorization)) {
        throw new ApiError('UNAUTHORIZED', 'a valid bearer token is required (Authorization: Bearer TOKEN)', {
          'www-authenticate': 'Bearer realm="lilio"',
        });
      }
      const target = parseTarget(path);
      const ctx: RouteContext = {
        lilio: this.lilio,
        req,
        res,
        method,
        query,
        expectContinue,
        serverFacts: () => this.facts(),
      };
      switch (target.route) {
        case 'root':
          return await rootRoute(ctx);
        case 'admin':
          return await adminRoute(ctx, target.path);
        case 'bucket':
          return await bucketRoute(ctx, target.bucket);
        case 'object':
          return await objectRoute(ctx, target.bucket, target.key);
        case 'health':
          return;
      }
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.headersSent || res.destroyed) {
      // Mid-stream: the status line is gone, so the only honest signal left is a cut connection
      // (the client sees fewer bytes than Content-Length announced).
      if (!req.destroyed && !res.destroyed) this.log(`${req.method} ${req.url}: stream cut: ${describeError(err)}`);
      res.destroy();
      return;
    }
    const { status, headers, body } = errorResponse(err);
    if (status >= 500) {
      const detail = err instanceof LilioError || err instanceof ApiError ? err.message : String(err);
      this.log(`${req.method} ${req.url?.slice(0, 200)}: ${status}: ${detail}`);
    }
    // A body that was not read (refused before it was consumed) would otherwise have to be drained
    // before the next request on this connection: close it instead.
    const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !req.complete) headers.connection = 'close';
    res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  /** Requests the HTTP parser refuses (bad request line, headers too large): still a JSON error. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const refusal =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new ApiError('HEADERS_TOO_LARGE', 'request headers are too large')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new ApiError('BAD_REQUEST', 'request headers took too long')
          : new ApiError('BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse error'})`);
    const { status, body } = errorResponse(refusal);
    this.metrics.recordRequest(ROUTE_LABELS.unknown, 'OTHER', status, 0);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}
