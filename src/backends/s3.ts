import { performance } from 'node:perf_hooks';
import type { ListObjectsV2CommandOutput, S3Client } from '@aws-sdk/client-s3';
import { ConfigError, describeError, NotFoundError, UnavailableError } from '../core/errors.js';
import { isChunkId, validateChunkId } from '../core/names.js';
import type { BackendHealth, BackendInfo, CallOptions, ChunkEntry, StorageBackend } from './backend.js';
import { isS3NotFound, mapS3Error } from './s3-errors.js';

export interface S3BackendOptions {
  name: string;
  /** An S3-compatible service; omitted for AWS, where region picks the endpoint. */
  endpoint?: string;
  region: string;
  bucket: string;
  prefix?: string;
  forcePathStyle?: boolean;
  /** Omitted: the SDK's standard chain (environment, shared files, SSO, instance and container roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Keys per ListObjectsV2 page (S3 caps it at 1,000); smaller only to exercise paging in tests. */
  listPageSize?: number;
  /** SDK attempts per call, the first included. */
  maxAttempts?: number;
}

type S3Sdk = typeof import('@aws-sdk/client-s3');

// A TCP connect that takes this long is a dead host, not a slow one.
const CONNECT_TIMEOUT_MS = 5_000;
// Idle socket time, not total time: a 64 MiB chunk on a slow link may take longer than this
// overall, and the engine's per-call deadline (backends.timeoutMs) bounds the whole call anyway.
const SOCKET_IDLE_TIMEOUT_MS = 30_000;
// Three attempts with the SDK's jittered backoff ride out a throttled or restarting endpoint
// in well under the engine's deadline; more would only delay the fail-over to another replica.
const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * Chunks as objects `prefix + id` in one bucket of any S3-compatible service.
 * An object PUT is atomic on S3 (readers see the old object or the new one), so
 * a chunk needs no temporary name. The SDK is loaded on first use: a config
 * without S3 storages does not pay for it.
 */
export class S3Backend implements StorageBackend {
  readonly name: string;
  readonly type = 's3';
  readonly bucket: string;
  /** "" or ending in "/". */
  readonly prefix: string;
  private readonly options: S3BackendOptions;
  private connection: Promise<{ sdk: S3Sdk; client: S3Client }> | undefined;
  private closed = false;

  constructor(options: S3BackendOptions) {
    if (!options.name) throw new ConfigError('an s3 backend needs a name');
    if (!options.bucket) throw new ConfigError(`s3 backend "${options.name}" needs a bucket`);
    if (!options.region) throw new ConfigError(`s3 backend "${options.name}" needs a region`);
    this.name = options.name;
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.options = options;
  }

  async put(id: string, data: Uint8Array, options?: CallOptions): Promise<void> {
    const key = this.keyOf(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const { sdk, client } = await this.connect();
    try {
      await client.send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: data,
          ContentLength: data.byteLength,
          ContentType: 'application/octet-stream',
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw this.mapError(err, 'put', key, signal);
    }
  }

  async get(id: string, options?: CallOptions): Promise<Buffer> {
    const key = this.keyOf(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const { sdk, client } = await this.connect();
    try {
      const response = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      if (!response.Body) throw new UnavailableError(`${this.where('get', key)}: the response has no body`);
      const bytes = await response.Body.transformToByteArray();
      if (response.ContentLength !== undefined && bytes.byteLength !== response.ContentLength) {
        throw new UnavailableError(
          `${this.where('get', key)}: body ended after ${bytes.byteLength} of ${response.ContentLength} bytes`,
        );
      }
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (isS3NotFound(err) && !signal?.aborted) throw new NotFoundError(`backend "${this.name}" has no chunk ${id}`);
      throw this.mapError(err, 'get', key, signal);
    }
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    const key = this.keyOf(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const { sdk, client } = await this.connect();
    try {
      // S3 answers 204 for a key that is not there; some compatible services say 404 instead.
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      if (isS3NotFound(err) && !signal?.aborted) return;
      throw this.mapError(err, 'delete', key, signal);
    }
  }

  async stat(id: string, options?: CallOptions): Promise<number | undefined> {
    const key = this.keyOf(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const { sdk, client } = await this.connect();
    try {
      const head = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      return head.ContentLength ?? 0;
    } catch (err) {
      // A HEAD answer has no body, so a missing bucket looks like a missing key; health() tells them apart.
      if (isS3NotFound(err) && !signal?.aborted) return undefined;
      throw this.mapError(err, 'stat', key, signal);
    }
  }

  async *list(options?: CallOptions): AsyncIterable<string> {
    for await (const object of this.chunkObjects(options?.signal)) yield object.id;
  }

  async *listEntries(options?: CallOptions): AsyncIterable<ChunkEntry> {
    for await (const object of this.chunkObjects(options?.signal)) {
      // LastModified is the service's clock, at second resolution; the grace period dwarfs both.
      yield { id: object.id, size: object.size, modifiedMs: object.modifiedMs };
    }
  }

  /** The chunk objects directly under the prefix, one ListObjectsV2 page at a time. */
  private async *chunkObjects(signal: AbortSignal | undefined): AsyncGenerator<ChunkEntry> {
    signal?.throwIfAborted();
    const { sdk, client } = await this.connect();
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix,
            // Only this prefix's own level: another Lilio's prefix nested below ours is not ours.
            Delimiter: '/',
            ContinuationToken: token,
            MaxKeys: this.options.listPageSize ?? 1000,
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw this.mapError(err, 'list', `${this.prefix}*`, signal);
      }
      for (const object of page.Contents ?? []) {
        const id = object.Key?.slice(this.prefix.length);
        if (id === undefined || !isChunkId(id)) continue;
        const modifiedMs = object.LastModified?.getTime();
        if (modifiedMs === undefined || Number.isNaN(modifiedMs)) {
          throw new UnavailableError(`${this.where('list', object.Key ?? '')}: the listing gives no LastModified`);
        }
        yield { id, size: object.Size ?? 0, modifiedMs };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async health(options?: CallOptions): Promise<BackendHealth> {
    const signal = options?.signal;
    signal?.throwIfAborted();
    const started = performance.now();
    try {
      const { sdk, client } = await this.connect();
      // HeadBucket: one cheap request that proves the endpoint, the credentials and the bucket.
      await client.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
      return { ok: true, latencyMs: performance.now() - started };
    } catch (err) {
      const error = isS3NotFound(err)
        ? `backend "${this.name}": bucket "${this.bucket}" does not exist${this.at()}`
        : describeError(this.mapError(err, 'probe', '', signal));
      return { ok: false, latencyMs: performance.now() - started, error };
    }
  }

  async info(options?: CallOptions): Promise<BackendInfo> {
    options?.signal?.throwIfAborted();
    // S3 has no capacity to report: a bucket grows until a quota or the bill stops it.
    return { name: this.name, type: this.type, location: `s3://${this.bucket}/${this.prefix}${this.at()}` };
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    if (connection) (await connection.catch(() => undefined))?.client.destroy();
  }

  private keyOf(id: string): string {
    return this.prefix + validateChunkId(id);
  }

  private connect(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    if (this.closed) return Promise.reject(new UnavailableError(`backend "${this.name}" is closed`));
    this.connection ??= import('@aws-sdk/client-s3').then((sdk) => ({ sdk, client: this.createClient(sdk) }));
    return this.connection;
  }

  private createClient(sdk: S3Sdk): S3Client {
    const o = this.options;
    return new sdk.S3Client({
      region: o.region,
      endpoint: o.endpoint,
      forcePathStyle: o.forcePathStyle ?? false,
      credentials: o.credentials,
      maxAttempts: o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      // The SDK's default CRC32 checksums and aws-chunked uploads are refused by several
      // S3-compatible services, and every replica is verified against its SHA-256 on read anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: SOCKET_IDLE_TIMEOUT_MS },
      // The SDK sends "Expect: 100-continue" from 2 MiB up, over a fresh connection each time (no
      // keep-alive, a TLS handshake per chunk); chunks are sized to be sent whole, so send them.
      expectContinueHeader: false,
    });
  }

  private at(): string {
    return this.options.endpoint ? ` at ${this.options.endpoint}` : '';
  }

  private where(action: string, key: string): string {
    return `backend "${this.name}": cannot ${action} s3://${this.bucket}/${key}`;
  }

  private mapError(err: unknown, action: string, key: string, signal?: AbortSignal): unknown {
    return mapS3Error(err, { where: this.where(action, key), bucket: this.bucket, signal });
  }
}

function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}
