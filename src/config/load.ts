import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { type ConfigInput, configSchema, metadataSchema, type ParsedConfig } from './schema.js';

/** Where the master key comes from; read lazily, only when a bucket is encrypted. */
export type MasterKeySource =
  | { kind: 'env'; base64: string }
  /** `create`: generate the key at first use (the embedded default and a default path only). */
  | { kind: 'file'; path: string; create: boolean };

/** The one validated configuration every part of Lilio is built from. */
export interface Config extends ParsedConfig {
  /** $LILIO_HOME: the embedded default's data, and the default master key location. */
  home: string;
  /** The file the config came from, or "embedded default". */
  source: string;
  masterKey: MasterKeySource;
}

export interface LoadOptions {
  /** --config FILE; wins over LILIO_CONFIG. */
  configPath?: string;
  /** --metadata TYPE: use this store type instead of the config's. */
  metadata?: string;
  /** --etcd-endpoints A,B,C; wins over LILIO_ETCD_ENDPOINTS, which wins over the config's. */
  etcdEndpoints?: string;
  env?: NodeJS.ProcessEnv;
}

export function lilioHome(env: NodeJS.ProcessEnv): string {
  return resolve(env.LILIO_HOME || join(homedir(), '.lilio'));
}

/** The embedded default: three local backends and the SQLite store under $LILIO_HOME, N=3 W=2 R=2. */
export function embeddedDefault(home: string): ConfigInput {
  return {
    metadata: { type: 'local', path: join(home, 'meta') },
    storages: [1, 2, 3].map((i) => ({
      name: `local-${i}`,
      type: 'local' as const,
      path: join(home, 'data', String(i)),
    })),
    quorum: { n: 3, w: 2, r: 2 },
  };
}

/** Loads --config FILE, else LILIO_CONFIG, else the embedded default; validates everything once. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const home = lilioHome(env);
  const path = options.configPath || env.LILIO_CONFIG || undefined;

  let raw: unknown;
  let baseDir = home;
  let source = 'embedded default';
  if (path) {
    source = resolve(path);
    baseDir = dirname(source);
    raw = readConfigFile(source);
  } else {
    raw = embeddedDefault(home);
  }
  const parsed = parseConfig(raw, source);
  parsed.metadata = metadataOverride(
    parsed.metadata,
    options.metadata,
    options.etcdEndpoints,
    env.LILIO_ETCD_ENDPOINTS || undefined,
  );

  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  for (const storage of parsed.storages) {
    if (storage.type === 'local') storage.path = abs(storage.path);
    if (storage.type === 'http') storage.tokenFile = abs(storage.tokenFile);
    if (storage.type === 'gdrive') storage.credentialsFile = abs(storage.credentialsFile);
  }
  if (parsed.metadata.type === 'local') parsed.metadata.path = abs(parsed.metadata.path ?? join(home, 'meta'));
  if (parsed.metadata.type === 'etcd' && parsed.metadata.etcd.tls) {
    const tls = parsed.metadata.etcd.tls;
    if (tls.caFile) tls.caFile = abs(tls.caFile);
    if (tls.certFile) tls.certFile = abs(tls.certFile);
    if (tls.keyFile) tls.keyFile = abs(tls.keyFile);
  }

  if (parsed.logging.file) parsed.logging.file = abs(parsed.logging.file);
  if (parsed.s3.credentialsFile) parsed.s3.credentialsFile = abs(parsed.s3.credentialsFile);

  let masterKey: MasterKeySource;
  if (env.LILIO_MASTER_KEY) masterKey = { kind: 'env', base64: env.LILIO_MASTER_KEY };
  else if (parsed.encryption.masterKeyFile)
    masterKey = { kind: 'file', path: abs(parsed.encryption.masterKeyFile), create: false };
  else masterKey = { kind: 'file', path: join(home, 'master.key'), create: true };

  return { ...parsed, home, source, masterKey };
}

/**
 * --metadata TYPE replaces the config's store type (the new store's settings
 * at their defaults, unless the config already was of that type), and etcd
 * endpoints from --etcd-endpoints or LILIO_ETCD_ENDPOINTS replace the config's.
 */
function metadataOverride(
  metadata: ParsedConfig['metadata'],
  type: string | undefined,
  flagEndpoints: string | undefined,
  envEndpoints: string | undefined,
): ParsedConfig['metadata'] {
  const target = type ?? metadata.type;
  if (flagEndpoints !== undefined && target !== 'etcd') {
    throw new ConfigError('--etcd-endpoints needs an etcd metadata store (--metadata etcd, or one in the config)');
  }
  const text = flagEndpoints ?? envEndpoints;
  const endpoints = text
    ?.split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  let raw: unknown;
  if (target !== 'etcd') {
    if (target === metadata.type) return metadata;
    raw = { type: target };
  } else {
    const etcd = metadata.type === 'etcd' ? metadata.etcd : undefined;
    if (!endpoints?.length && !etcd) {
      throw new ConfigError('--metadata etcd needs endpoints: --etcd-endpoints HOST:PORT,... or LILIO_ETCD_ENDPOINTS');
    }
    if (!endpoints?.length && type === undefined) return metadata;
    raw = { type: 'etcd', etcd: { ...etcd, ...(endpoints?.length ? { endpoints } : {}) } };
  }
  const result = metadataSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = ['metadata', ...(issue?.path ?? [])].join('.');
    throw new ConfigError(`${type ? `--metadata ${type}: ` : ''}${field}: ${issue?.message}`);
  }
  return result.data;
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Validates a raw config object; the error names every offending field by its path. */
export function parseConfig(raw: unknown, source = 'config'): ParsedConfig {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const where = issue.path.length
      ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
      : '';
    const field = where ? where.replace(/^\./, '') : '(top level)';
    return `${field}: ${issue.message}`;
  });
  throw new ConfigError(`invalid config (${source}):\n  ${problems.join('\n  ')}`);
}
