import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { describeError, InvalidError, LilioError, TimeoutError, UnavailableError } from '../core/errors.js';
import type { ObjectRecord } from '../core/types.js';
import type { BucketInfo, Status } from '../engine/status.js';
import type { BucketSummary, ObjectListing, PutResult } from './api-types.js';
import { errorFromWire } from './errors.js';

/** A call that stops moving for this long is abandoned. */
const IDLE_TIMEOUT_MS = 120_000;
/** How long a PUT waits for "100 Continue" before it sends the body regardless. */
const CONTINUE_TIMEOUT_MS = 1_000;
/** Error bodies are small; more than this is not one of ours. */
const MAX_ERROR_BODY = 64 * 1024;

export interface RemoteObject {
  size: number;
  etag: string;
  version: number;
  contentType: string;
  lastModified: string;
  /** The bytes, checked against Content-Length: a cut connection is an error, never a short file. */
  body: AsyncIterable<Buffer>;
}

export interface ListRequest {
  prefix?: string;
  delimiter?: '/';
  continuation?: string;
  limit?: number;
}

export type ServerStats = Status & { server: Record<string, unknown> };

function objectPath(bucket: string, key?: string): string {
  const b = `/${encodeURIComponent(bucket)}`;
  return key === undefined ? b : `${b}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * A client of the HTTP API (src/server/api.ts), used by the CLI's --endpoint.
 * Errors come back as the LilioError the server's engine raised (same code,
 * same message), so callers cannot tell a remote failure from a local one.
 */
export class LilioClient {
  private readonly base: URL;
  private readonly agent: HttpAgent;

  constructor(
    endpoint: string,
    private readonly token: string | undefined,
  ) {
    let base: URL;
    try {
      base = new URL(endpoint);
    } catch {
      throw new InvalidError(`--endpoint: "${endpoint}" is not a URL`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new InvalidError(`--endpoint: "${endpoint}" is not an http:// or https:// URL`);
    }
    if (base.search || base.hash) throw new InvalidError(`--endpoint: "${endpoint}" may not carry a query`);
    this.base = base;
    this.agent = base.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  // ---- buckets ----

  async listBuckets(): Promise<BucketSummary[]> {
    return ((await this.json('GET', '/')) as { buckets: BucketSummary[] }).buckets;
  }

  createBucket(name: string, options: { encrypt?: boolean; chunkSize?: number } = {}): Promise<BucketSummary> {
    const query = new URLSearchParams();
    if (options.encrypt) query.set('encrypt', 'true');
    if (options.chunkSize !== undefined) query.set('chunkSize', String(options.chunkSize));
    return this.json('PUT', objectPath(name), query) as Promise<BucketSummary>;
  }

  bucketInfo(name: string): Promise<BucketInfo> {
    return this.json('GET', objectPath(name), new URLSearchParams({ info: '' })) as Promise<BucketInfo>;
  }

  async deleteBucket(name: string): Promise<void> {
    await this.json('DELETE', objectPath(name));
  }

  list(bucket: string, options: ListRequest = {}): Promise<ObjectListing> {
    const query = new URLSearchParams();
    if (options.prefix) query.set('prefix', options.prefix);
    if (options.delimiter) query.set('delimiter', options.delimiter);
    if (options.continuation) query.set('continuation', options.continuation);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    return this.json('GET', objectPath(bucket), query) as Promise<ObjectListing>;
  }

  // ---- objects ----

  /** Streams `source` into bucket/key. Expect: 100-continue: nothing is sent before the server agrees. */
  async putObject(
    bucket: string,
    key: string,
    source: AsyncIterable<Uint8Array>,
    options: { size?: number; contentType?: string } = {},
  ): Promise<PutResult> {
    const headers: OutgoingHttpHeaders = { expect: '100-continue' };
    if (options.size !== undefined) headers['content-length'] = String(options.size);
    else headers['transfer-encoding'] = 'chunked';
    if (options.contentType) headers['content-type'] = options.contentType;
    const res = await this.send('PUT', objectPath(bucket, key), undefined, headers, source);
    return (await readJson(res)) as PutResult;
  }

  statObject(bucket: string, key: string): Promise<ObjectRecord> {
    return this.json('GET', objectPath(bucket, key), new URLSearchParams({ stat: '' })) as Promise<ObjectRecord>;
  }

  async getObject(bucket: string, key: string, range?: { start: number; end?: number }): Promise<RemoteObject> {
    const headers: OutgoingHttpHeaders = {};
    if (range) headers.range = `bytes=${range.start}-${range.end === undefined ? '' : range.end - 1}`;
    const res = await this.send('GET', objectPath(bucket, key), undefined, headers);
    const length = Number(res.headers['content-length']);
    const total = range ? Number(/\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1] ?? length) : length;
    return {
      size: total,
      etag: (res.headers.etag ?? '').replaceAll('"', ''),
      version: Number(res.headers['x-lilio-version'] ?? 0),
      contentType: res.headers['content-type'] ?? 'application/octet-stream',
      lastModified: res.headers['last-modified'] ?? '',
      body: checkedBody(res, length, `${bucket}/${key}`),
    };
  }

  async deleteObject(bucket: string, key: string): Promise<void> {
    await this.json('DELETE', objectPath(bucket, key));
  }

  stats(): Promise<ServerStats> {
    return this.json('GET', '/admin/stats') as Promise<ServerStats>;
  }

  // ---- transport ----

  private async json(method: string, path: string, query?: URLSearchParams): Promise<unknown> {
    const res = await this.send(method, path, query, {});
    if (res.statusCode === 204 || method === 'HEAD') {
      res.resume();
      return undefined;
    }
    return readJson(res);
  }

  /** Sends one request; resolves with a 2xx response, rejects with the server's error as a LilioError. */
  private send(
    method: string,
    path: string,
    query: URLSearchParams | undefined,
    headers: OutgoingHttpHeaders,
    body?: AsyncIterable<Uint8Array>,
  ): Promise<IncomingMessage> {
    const url = new URL(this.base.href);
    url.pathname = `${this.base.pathname.replace(/\/$/, '')}${path}`;
    // The API takes bare flags (?info, ?stat); URLSearchParams would write "info=".
    url.search = query ? query.toString().replace(/=(&|$)/g, '$1') : '';
    const all: OutgoingHttpHeaders = { ...headers };
    if (this.token) all.authorization = `Bearer ${this.token}`;
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { method, headers: all, agent: this.agent });
      let uploadError: unknown;
      req.setTimeout(IDLE_TIMEOUT_MS, () =>
        req.destroy(new TimeoutError(`${this.base.host} did not answer ${method} within ${IDLE_TIMEOUT_MS} ms`)),
      );
      req.once('error', (err) => reject(uploadError ?? transportError(err, this.base)));
      req.once('response', (res) => {
        if ((res.statusCode ?? 500) < 400) {
          resolve(res);
          return;
        }
        readErrorBody(res).then(
          (parsed) => reject(errorFromWire(res.statusCode ?? 500, parsed)),
          (err) => reject(transportError(err, this.base)),
        );
      });
      if (body === undefined) {
        req.end();
        return;
      }
      req.flushHeaders();
      let started = false;
      const upload = () => {
        if (started) return;
        started = true;
        clearTimeout(fallback);
        pipeline(body, req).catch((err) => {
          // A local read failure (the file to upload vanished): the server sees a cut body and commits nothing.
          uploadError = err;
          req.destroy(err);
        });
      };
      // A server or proxy that ignores Expect gets the body anyway after a moment (RFC 9110 §10.1.1).
      const fallback = setTimeout(upload, CONTINUE_TIMEOUT_MS);
      req.once('continue', upload);
      req.once('response', () => clearTimeout(fallback));
      req.once('close', () => clearTimeout(fallback));
    });
  }
}

/** What the CLI prints for the usual ways a server cannot be reached, instead of Node's codes. */
const TRANSPORT_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is `lilio server` running there?)',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

function transportError(err: unknown, base: URL): LilioError {
  if (err instanceof LilioError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const reason = (code && TRANSPORT_REASONS[code]) ?? code ?? describeError(err);
  return new UnavailableError(`cannot reach ${base.host}: ${reason}`, { cause: err });
}

async function readErrorBody(res: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const piece of res as AsyncIterable<Buffer>) {
    text += piece.toString('utf8');
    if (text.length > MAX_ERROR_BODY) break;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function readJson(res: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const piece of res as AsyncIterable<Buffer>) text += piece.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new UnavailableError(`the server answered ${res.statusCode} with a body that is not JSON`);
  }
}

async function* checkedBody(res: IncomingMessage, length: number, what: string): AsyncGenerator<Buffer> {
  let received = 0;
  try {
    for await (const piece of res as AsyncIterable<Buffer>) {
      received += piece.byteLength;
      yield piece;
    }
  } catch (err) {
    throw new UnavailableError(
      `download of ${what} was cut after ${received} of ${length} bytes: ${describeError(err)}`,
    );
  }
  if (!res.complete || (Number.isFinite(length) && received !== length)) {
    throw new UnavailableError(`download of ${what} was cut after ${received} of ${length} bytes`);
  }
}
