import { z } from 'zod';
import { parseSize } from './size.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
/** 1 PiB: sizes stay exact in a double (below 2^53) with room for offset arithmetic. */
export const DEFAULT_MAX_FILE_SIZE = 2 ** 50;
/** Offsets past 2^52 would no longer add exactly in a double. */
export const MAX_FILE_SIZE = 2 ** 52;
export const MIN_CHUNK_SIZE = 64 * KiB;
export const MAX_CHUNK_SIZE = 64 * MiB;

/** A byte count: a non-negative integer or a string such as "4MiB". */
const size = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size (use bytes or e.g. "4MiB")` });
    return z.NEVER;
  }
  return bytes;
});

const chunkSize = size.refine((n) => n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE, {
  message: 'must be between 64 KiB and 64 MiB',
});

const storageName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1-63 letters, digits, dots, hyphens or underscores');

const localStorage = z.strictObject({
  name: storageName,
  type: z.literal('local'),
  path: z.string().min(1),
  /** fsync every chunk and its directory before acknowledging (slower; survives power loss). */
  fsync: z.boolean().default(false),
  /** Chunk I/O bypasses the page cache (O_DIRECT) where the filesystem allows it. */
  directIo: z.boolean().default(true),
});

const memoryStorage = z.strictObject({
  name: storageName,
  type: z.literal('memory'),
  capacity: size.optional(),
});

const httpStorage = z.strictObject({
  name: storageName,
  type: z.literal('http'),
  /** A `lilio node`: http(s)://host:port, optionally with a path prefix. */
  url: z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }),
  /** File holding the node's bearer token (relative to the config file). */
  tokenFile: z.string().min(1),
  /** Deadline of each call to the node. */
  timeoutMs: z.number().int().min(10).optional(),
});

const s3Storage = z
  .strictObject({
    name: storageName,
    type: z.literal('s3'),
    /** An S3-compatible service's URL (MinIO, Ceph, R2, ...); omitted for AWS itself. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    region: z.string().min(1),
    bucket: z.string().min(1),
    /** Chunks live under this key prefix, e.g. "lilio/" (a missing trailing "/" is added). */
    prefix: z.string().max(512).default(''),
    /** Bucket in the path (http://host/bucket/key), as most self-hosted services need. */
    forcePathStyle: z.boolean().default(false),
    /** Omitted: the AWS SDK's standard chain (AWS_ACCESS_KEY_ID..., ~/.aws, instance roles). */
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    sessionToken: z.string().min(1).optional(),
  })
  .refine((s) => (s.accessKeyId === undefined) === (s.secretAccessKey === undefined), {
    message: 'accessKeyId and secretAccessKey go together (or omit both to use the AWS environment)',
    path: ['accessKeyId'],
  })
  .refine((s) => s.sessionToken === undefined || s.accessKeyId !== undefined, {
    message: 'sessionToken needs accessKeyId and secretAccessKey',
    path: ['sessionToken'],
  });

const gdriveStorage = z.strictObject({
  name: storageName,
  type: z.literal('gdrive'),
  /** The Drive folder that holds the chunks (the id in its URL). */
  folderId: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, 'must be a Drive folder id (letters, digits, - and _)'),
  /** A service-account key or an OAuth client + refresh token, as JSON (see README). */
  credentialsFile: z.string().min(1),
  /** Another Drive API root (tests, proxies); default https://www.googleapis.com/. */
  rootUrl: z.url({ protocol: /^https?$/ }).optional(),
});

export const storageSchema = z.discriminatedUnion('type', [
  localStorage,
  memoryStorage,
  httpStorage,
  s3Storage,
  gdriveStorage,
]);

const memoryMetadata = z.strictObject({ type: z.literal('memory') });
const localMetadata = z.strictObject({
  type: z.literal('local'),
  /** Directory of the SQLite database; default $LILIO_HOME/meta. */
  path: z.string().min(1).optional(),
  /** "normal": kill -9 safe, a power cut may lose the last commits. "full": survives power cuts too. */
  synchronous: z.enum(['normal', 'full']).default('normal'),
});

/** "host:port" or "http(s)://host:port"; a bare address means http. */
const etcdEndpoint = z
  .string()
  .regex(/^(https?:\/\/)?[^\s/]+:\d+$/, 'must be host:port or http(s)://host:port')
  .transform((endpoint) => (/^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`));

const etcdMetadata = z.strictObject({
  type: z.literal('etcd'),
  etcd: z
    .strictObject({
      endpoints: z.array(etcdEndpoint).min(1, 'at least one etcd endpoint is needed'),
      /** Every key of this Lilio lives under it, so several can share one cluster. */
      prefix: z
        .string()
        .regex(/^\/[^\0]*$/, 'must start with "/"')
        .refine((p) => p.replace(/\/+$/, '').length > 0, { message: 'must not be "/" alone' })
        .default('/lilio'),
      auth: z.strictObject({ username: z.string().min(1), password: z.string() }).optional(),
      tls: z
        .strictObject({
          caFile: z.string().min(1).optional(),
          certFile: z.string().min(1).optional(),
          keyFile: z.string().min(1).optional(),
        })
        .refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), {
          message: 'certFile and keyFile go together',
        })
        .optional(),
      /** How long connecting to an endpoint may take. */
      dialTimeoutMs: z.number().int().min(100).default(3_000),
      /** A metadata call that cannot reach a working member fails (EIO on the mount) after this long. */
      requestTimeoutMs: z.number().int().min(100).default(5_000),
      /** The cluster's --max-txn-ops: no transaction is made bigger than this. */
      maxTxnOps: z.number().int().min(64).max(100_000).default(128),
    })
    .refine((etcd) => !etcd.tls || etcd.endpoints.every((e) => e.startsWith('https://')), {
      message: 'tls needs https:// endpoints',
      path: ['endpoints'],
    }),
});

export const metadataSchema = z.discriminatedUnion('type', [memoryMetadata, localMetadata, etcdMetadata]);

const quorumSchema = z.strictObject({
  n: z.number().int().min(1),
  w: z.number().int().min(1),
  r: z.number().int().min(1),
  /**
   * "first": serve the first replica whose checksum verifies (chunks are
   * immutable, so a verified replica is never stale). "strict": the original
   * design's rule, R verified replicas that agree.
   */
  readMode: z.enum(['first', 'strict']).default('first'),
});

export const configSchema = z
  .strictObject({
    metadata: metadataSchema.default({ type: 'local', synchronous: 'normal' }),
    storages: z.array(storageSchema).min(1, 'at least one storage backend is needed'),
    quorum: quorumSchema.default({ n: 3, w: 2, r: 2, readMode: 'first' }),
    chunkSize: chunkSize.default(MiB),
    /** Objects up to this size live inside their metadata record (0 turns it off). */
    inlineThreshold: size.refine((n) => n <= 64 * KiB, { message: 'must be at most 64 KiB' }).default(4 * KiB),
    ring: z
      .strictObject({ virtualNodes: z.number().int().min(1).max(10_000).default(150) })
      .default({ virtualNodes: 150 }),
    encryption: z
      .strictObject({
        /** File holding the base64 master key; LILIO_MASTER_KEY overrides it. Default $LILIO_HOME/master.key. */
        masterKeyFile: z.string().min(1).optional(),
      })
      .default({}),
    writes: z
      .strictObject({
        /** Chunks of one object being replicated at once; a writer waits beyond it (backpressure). */
        chunksInFlightPerObject: z.number().int().min(1).max(64).default(4),
        /** Chunks being replicated at once in the whole process. */
        chunksInFlightTotal: z.number().int().min(1).max(1024).default(16),
        /**
         * Unsealed bytes the mount may hold across all open files; past it a writer waits
         * while the oldest dirty buffers are sealed (backpressure), wherever they belong.
         */
        dirtyBytes: size.refine((n) => n >= MiB, { message: 'must be at least 1 MiB' }).default(512 * MiB),
        /** The largest size a file may have; larger truncates and writes answer EFBIG. */
        maxFileSize: size
          .refine((n) => n >= MiB && n <= MAX_FILE_SIZE, { message: `must be between 1 MiB and ${MAX_FILE_SIZE}` })
          .default(DEFAULT_MAX_FILE_SIZE),
      })
      .default({
        chunksInFlightPerObject: 4,
        chunksInFlightTotal: 16,
        dirtyBytes: 512 * MiB,
        maxFileSize: DEFAULT_MAX_FILE_SIZE,
      }),
    reads: z
      .strictObject({
        /** A replica slower than this is abandoned for the next one (first mode). */
        replicaTimeoutMs: z.number().int().min(10).default(5_000),
      })
      .default({ replicaTimeoutMs: 5_000 }),
    backends: z
      .strictObject({
        /** Deadline for any one call to a backend. */
        timeoutMs: z.number().int().min(10).default(30_000),
        /** How often a backend marked down is probed again. */
        probeIntervalMs: z.number().int().min(10).default(5_000),
      })
      .default({ timeoutMs: 30_000, probeIntervalMs: 5_000 }),
    gc: z
      .strictObject({
        /**
         * Replaced chunks are deleted only after this long, so that readers that
         * opened the old version (here or in another process) can finish.
         */
        graceSeconds: z.number().int().min(0).default(600),
      })
      .default({ graceSeconds: 600 }),
    uploads: z
      .strictObject({
        /**
         * A multipart upload (S3) no part was added to for this long is aborted
         * by gc and its parts' chunks collected: clients that died mid-upload
         * leave nothing behind for longer. Default 7 days.
         */
        expireAfterSeconds: z
          .number()
          .int()
          .min(1)
          .default(7 * 24 * 3600),
        /** Every part of a completed upload but the last must hold at least this much (S3: 5 MiB). */
        minPartSize: size.default(5 * MiB),
      })
      .default({ expireAfterSeconds: 7 * 24 * 3600, minPartSize: 5 * MiB }),
    sessions: z
      .strictObject({
        /**
         * Every process holds a session in the metadata store, renewed every
         * ttl/3; what a process that stops renewing held (chunks it was writing
         * or reading) is released this long after its last renewal.
         */
        ttlSeconds: z.number().int().min(1).max(3600).default(60),
      })
      .default({ ttlSeconds: 60 }),
    cache: z.strictObject({ size: size.default(256 * MiB) }).default({ size: 256 * MiB }),
    /** Logs of long-running processes (mount, server); --log-* flags win over these. */
    logging: z
      .strictObject({
        level: z.enum(['error', 'warn', 'info', 'debug']).optional(),
        format: z.enum(['text', 'json']).optional(),
        /** Log to this file instead of stderr (a background mount: default $LILIO_HOME/logs/mount-PATH.log). */
        file: z.string().min(1).optional(),
        /** The file is rotated past this size... */
        maxSize: size.refine((n) => n >= 64 * KiB, { message: 'must be at least 64 KiB' }).default(10 * MiB),
        /** ...and this many rotated files are kept (FILE.1 ... FILE.N). */
        keep: z.number().int().min(0).max(100).default(3),
      })
      .default({ maxSize: 10 * MiB, keep: 3 }),
    /** The S3 endpoint of `lilio server --s3-listen` (flags win over these). */
    s3: z
      .strictObject({
        /** Access keys (lilio s3 keys add|ls|rm); default $LILIO_HOME/s3-credentials.json. */
        credentialsFile: z.string().min(1).optional(),
        /** Virtual-host-style addressing: BUCKET.DOMAIN/KEY (path-style always works). */
        domain: z
          .string()
          .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, 'must be a lowercase host name')
          .optional(),
        /** The region GetBucketLocation reports; clients may sign with any. */
        region: z
          .string()
          .regex(/^[a-z0-9-]{1,32}$/)
          .default('us-east-1'),
      })
      .default({ region: 'us-east-1' }),
  })
  .superRefine((config, ctx) => {
    const { n, w, r } = config.quorum;
    if (w + r <= n) {
      ctx.addIssue({
        code: 'custom',
        path: ['quorum'],
        message: `W + R must be greater than N (got N=${n} W=${w} R=${r}: ${w} + ${r} <= ${n})`,
      });
    }
    if (w > n) ctx.addIssue({ code: 'custom', path: ['quorum', 'w'], message: `W=${w} is greater than N=${n}` });
    if (r > n) ctx.addIssue({ code: 'custom', path: ['quorum', 'r'], message: `R=${r} is greater than N=${n}` });
    if (n > config.storages.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['quorum', 'n'],
        message: `N=${n} replicas need at least ${n} storage backends, but ${config.storages.length} are configured`,
      });
    }
    const seen = new Set<string>();
    config.storages.forEach((storage, index) => {
      if (seen.has(storage.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['storages', index, 'name'],
          message: `duplicate name "${storage.name}"`,
        });
      }
      seen.add(storage.name);
    });
  });

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type StorageConfig = z.output<typeof storageSchema>;
export type MetadataConfig = z.output<typeof metadataSchema>;
export type EtcdMetadataConfig = z.output<typeof etcdMetadata>;
export type QuorumConfig = z.output<typeof quorumSchema>;
