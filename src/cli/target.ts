import type { Command } from 'commander';
import { readClientToken } from '../config/token.js';
import { InvalidError, NotFoundError, UsageError } from '../core/errors.js';
import type { ObjectRecord } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';
import { type BucketInfo, bucketInfo, collectStatus, type Status } from '../engine/status.js';
import { type BucketSummary, bucketSummary, type ListedObject, listedObject } from '../server/api-types.js';
import { LilioClient } from '../server/client.js';
import { type GlobalOptions, withEngine } from './context.js';

export interface TargetPage {
  objects: ListedObject[];
  prefixes: string[];
  /** Opaque: hand it back to get the next page. */
  continuation?: string;
}

/**
 * What the bucket and object commands need, from the local stores (the
 * engine) or from a running server (--endpoint). Both answer in the API's
 * shapes and raise the same LilioErrors, so each command has one code path.
 */
export interface Target {
  createBucket(name: string, options: { encrypt: boolean; chunkSize?: number }): Promise<BucketSummary>;
  listBuckets(): Promise<BucketSummary[]>;
  bucketInfo(name: string): Promise<BucketInfo>;
  deleteBucket(name: string): Promise<void>;
  putObject(
    bucket: string,
    key: string,
    source: AsyncIterable<Uint8Array>,
    size?: number,
  ): Promise<{ size: number; chunks: number }>;
  getObject(bucket: string, key: string): Promise<{ size: number; body: AsyncIterable<Buffer> }>;
  /**
   * Copies an object's content to another name, through a reader and a
   * writer: the copy gets chunks of its own (under the target bucket's key and
   * chunk size), so deleting either object never touches the other's data.
   * `through` sees every piece on its way (for the progress bar).
   */
  copyObject(
    from: { bucket: string; key: string },
    to: { bucket: string; key: string },
    through: (size: number, body: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>,
  ): Promise<{ size: number; chunks: number }>;
  statObject(bucket: string, key: string): Promise<ObjectRecord>;
  list(bucket: string, options: { prefix: string; recursive: boolean; continuation?: string }): Promise<TargetPage>;
  deleteObject(bucket: string, key: string): Promise<void>;
  status(): Promise<Status & { server?: Record<string, unknown> }>;
}

const PAGE = 1000;

function engineTarget(lilio: Lilio): Target {
  return {
    createBucket: async (name, options) => bucketSummary(await lilio.createBucket(name, options)),
    listBuckets: async () => (await lilio.listBuckets()).map(bucketSummary),
    bucketInfo: (name) => bucketInfo(lilio, name),
    deleteBucket: (name) => lilio.deleteBucket(name),
    putObject: async (bucket, key, source) => {
      const record = await lilio.putObject(bucket, key, source);
      return { size: record.size, chunks: record.chunks.length };
    },
    getObject: async (bucket, key) => {
      const reader = await lilio.openObject(bucket, key);
      return { size: reader.size, body: lilio.readObject(reader) };
    },
    statObject: (bucket, key) => lilio.statObject(bucket, key),
    copyObject: async (from, to, through) => {
      const reader = await lilio.openObject(from.bucket, from.key);
      const { record } = reader;
      if (record.kind !== 'file')
        throw new InvalidError(`${from.bucket}/${from.key} is a ${record.kind}: cp copies files`);
      const copied = await lilio.putObject(to.bucket, to.key, through(reader.size, lilio.readObject(reader)), {
        attrs: { mode: record.attrs.mode },
        contentType: record.contentType,
      });
      return { size: copied.size, chunks: copied.chunks.length };
    },
    list: async (bucket, options) => {
      const page = await lilio.list(bucket, {
        prefix: options.prefix,
        delimiter: options.recursive ? undefined : '/',
        startAfter: options.continuation,
        limit: PAGE,
      });
      return { objects: page.objects.map(listedObject), prefixes: page.prefixes, continuation: page.next };
    },
    deleteObject: async (bucket, key) => {
      if (!(await lilio.deleteObject(bucket, key))) throw new NotFoundError(`object "${bucket}/${key}" does not exist`);
    },
    status: () => collectStatus(lilio),
  };
}

function remoteTarget(client: LilioClient): Target {
  return {
    createBucket: (name, options) => client.createBucket(name, options),
    listBuckets: () => client.listBuckets(),
    bucketInfo: (name) => client.bucketInfo(name),
    deleteBucket: (name) => client.deleteBucket(name),
    putObject: (bucket, key, source, size) => client.putObject(bucket, key, source, { size }),
    getObject: (bucket, key) => client.getObject(bucket, key),
    statObject: (bucket, key) => client.statObject(bucket, key),
    copyObject: async (from, to, through) => {
      // The server has no copy route: the bytes pass through this process, never through a local file.
      const object = await client.getObject(from.bucket, from.key);
      return client.putObject(to.bucket, to.key, through(object.size, object.body), {
        size: object.size,
        contentType: object.contentType,
      });
    },
    list: (bucket, options) =>
      client.list(bucket, {
        prefix: options.prefix,
        delimiter: options.recursive ? undefined : '/',
        continuation: options.continuation,
        limit: PAGE,
      }),
    deleteObject: (bucket, key) => client.deleteObject(bucket, key),
    status: () => client.stats(),
  };
}

/** The bearer token to present: $LILIO_TOKEN, else the first token of --token-file. */
function clientToken(options: GlobalOptions, env: NodeJS.ProcessEnv): string | undefined {
  if (env.LILIO_TOKEN) return env.LILIO_TOKEN;
  if (options.tokenFile) return readClientToken(options.tokenFile);
  return undefined;
}

/** Runs a command against --endpoint when given, else against the local stores. */
export async function withTarget<T>(command: Command, run: (target: Target) => Promise<T>): Promise<T> {
  const options = command.optsWithGlobals<GlobalOptions>();
  if (!options.endpoint) return withEngine(command, (lilio) => run(engineTarget(lilio)));
  if (options.config) throw new UsageError('--config and --endpoint exclude each other: the server has its own config');
  if (!/^https?:\/\/[^/]/.test(options.endpoint))
    throw new UsageError(`--endpoint: "${options.endpoint}" is not an http:// or https:// URL`);
  const client = new LilioClient(options.endpoint, clientToken(options, process.env));
  try {
    return await run(remoteTarget(client));
  } finally {
    client.close();
  }
}
