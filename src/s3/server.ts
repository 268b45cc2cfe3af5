import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError } from '../core/errors.js';
import { validateBucketName, validateKey } from '../core/names.js';
import type { Lilio } from '../engine/lilio.js';
import { NoopS3Metrics, type S3Metrics } from '../metrics/s3.js';
import { RequestDrain } from '../server/drain.js';
import { listen } from '../server/listen.js';
import type { S3Context, S3Settings } from './context.js';
import { type KeyRing, keyAllowsBucket } from './credentials.js';
import { errorDocument, S3Error, toS3Error } from './errors.js';
import { resolveOperation } from './router.js';
import { authenticate } from './sigv4.js';
import { parseTarget } from './target.js';

export interface S3ServerOptions {
  keys: KeyRing;
  /** Virtual-host-style addressing: BUCKET.DOMAIN names a bucket. Path-style always works. */
  domain?: string;
  region?: string;
  /** The largest single PUT; default (and S3's limit) 5 GiB. */
  maxObjectSize?: number;
  metrics?: S3Metrics;
  /** Failures worth an operator's attention (5xx, cut streams). Never given a secret or a signature. */
  log?: (line: string) => void;
}

const GiB = 1024 ** 3;
const HEADERS_TIMEOUT_MS = 30_000;
/** An upload that stops moving for this long is abandoned (and its writer aborted); no limit on a whole request. */
const IDLE_TIMEOUT_MS = 120_000;

/**
 * The S3 endpoint: S3's REST protocol over the same engine as the HTTP API
 * and the mount. Every request is authenticated (SigV4) before anything
 * about it is looked at; every failure is an S3 XML error document; nothing
 * a client sends can crash the process.
 */
export class S3Server {
  readonly server: Server;
  private readonly metrics: S3Metrics;
  private readonly log: (line: string) => void;
  private readonly settings: S3Settings;
  private readonly drain: RequestDrain;

  constructor(
    private readonly lilio: Lilio,
    private readonly options: S3ServerOptions,
  ) {
    this.metrics = options.metrics ?? new NoopS3Metrics();
    this.log = options.log ?? (() => undefined);
    this.settings = { region: options.region ?? 'us-east-1', maxObjectSize: options.maxObjectSize ?? 5 * GiB };
    this.server = createServer((req, res) => void this.handle(req, res, false));
    this.server.on('checkContinue', (req, res) => void this.handle(req, res, true));
    this.server.on('clientError', (err, socket) => this.clientError(err as NodeJS.ErrnoException, socket));
    this.server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = 0;
    this.server.timeout = IDLE_TIMEOUT_MS;
    this.drain = new RequestDrain(this.server);
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listen(this.server, port, host);
  }

  /** Graceful stop, as the HTTP API's: requests in progress get `graceMs`, then are cut (cut uploads commit nothing). */
  close(graceMs = 10_000): Promise<void> {
    return this.drain.close(graceMs);
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
    const started = performance.now();
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    let operation = 'Unknown';
    let bucket: string | undefined;
    let key: string | undefined;
    res.once('close', () => {
      const status = res.headersSent ? res.statusCode : 499;
      this.metrics.recordRequest(operation, status, (performance.now() - started) / 1000);
    });
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('server', 'Lilio');
    this.drain.track(res);
    try {
      const method = req.method ?? 'GET';
      const target = parseTarget(req.url ?? '/', req.headers.host, this.options.domain);
      bucket = target.bucket;
      key = target.key;
      // The operation is known by the request's shape alone (the metrics label it even when it is refused);
      // the signature is checked before anything else, so an unauthenticated client learns nothing of names.
      let resolved: ReturnType<typeof resolveOperation> | undefined;
      let unroutable: unknown;
      try {
        resolved = resolveOperation(method, bucket, key, target.query, req.headers);
        operation = resolved.name;
      } catch (err) {
        unroutable = err;
      }
      const auth = authenticate(req, target.rawPath, target.rawQuery, target.query, this.options.keys);
      if (!resolved) throw unroutable;
      if (resolved.scope === 'bucket') {
        if (!keyAllowsBucket(auth.key, bucket!)) throw new S3Error('AccessDenied', 'Access Denied');
        if (operation !== 'CreateBucket') {
          try {
            validateBucketName(bucket!);
          } catch (err) {
            // A name Lilio cannot hold cannot exist.
            throw new S3Error('NoSuchBucket', (err as Error).message);
          }
        }
        if (key !== undefined) validateKey(key);
      }
      if (resolved.access === 'write' && auth.key.readOnly)
        throw new S3Error('AccessDenied', 'Access Denied: the key is read-only');
      let continued = false;
      const ctx: S3Context = {
        lilio: this.lilio,
        req,
        res,
        method,
        query: target.query,
        bucket: bucket ?? '',
        key: key ?? '',
        auth,
        settings: this.settings,
        sendContinue: () => {
          if (expectContinue && !continued) res.writeContinue();
          continued = true;
        },
      };
      await resolved.run(ctx);
    } catch (err) {
      this.fail(req, res, err, { bucket, key, requestId });
    }
  }

  private fail(
    req: IncomingMessage,
    res: ServerResponse,
    err: unknown,
    target: { bucket?: string; key?: string; requestId: string },
  ): void {
    if (res.headersSent || res.destroyed) {
      // Mid-stream: the status line is gone, so the only honest signal left is a cut connection.
      if (!req.destroyed && !res.destroyed)
        this.log(`${req.method} ${target.requestId}: stream cut: ${describeError(err)}`);
      res.destroy();
      return;
    }
    const error = toS3Error(err, { key: target.key });
    if (error.status >= 500 && error.code !== 'NotImplemented') {
      // The request id ties the log line to what the client saw; the URL is left out (a presigned one carries a signature).
      this.log(
        `${req.method} ${target.requestId}: ${error.status} ${error.code}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const headers: Record<string, string> = { ...error.headers };
    const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !req.complete) headers.connection = 'close';
    if (error.code === 'NotModified' || req.method === 'HEAD') {
      // No body on a HEAD or a 304: the status (and S3's x-amz-error-code) say it all.
      res.writeHead(error.status, { ...headers, 'x-amz-error-code': error.code, 'content-length': '0' }).end();
      return;
    }
    const body = errorDocument(error, target);
    res.writeHead(error.status, {
      ...headers,
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.end(body);
  }

  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const error = new S3Error('InvalidRequest', 'malformed HTTP request');
    const body = errorDocument(error, { requestId: randomBytes(8).toString('hex').toUpperCase() });
    this.metrics.recordRequest('Unknown', 400, 0);
    socket.end(
      `HTTP/1.1 400 ${STATUS_CODES[400]}\r\ncontent-type: application/xml\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}
