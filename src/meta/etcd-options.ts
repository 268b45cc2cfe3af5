import { readFileSync } from 'node:fs';
import type { EtcdMetadataConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { EtcdStoreOptions } from './etcd-client.js';

/** The store's options from its config section, reading the TLS files it names. */
export function etcdOptionsFrom(config: EtcdMetadataConfig['etcd']): EtcdStoreOptions {
  const file = (what: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`metadata.etcd.tls.${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const options: EtcdStoreOptions = {
    endpoints: config.endpoints,
    prefix: config.prefix,
    dialTimeoutMs: config.dialTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    maxTxnOps: config.maxTxnOps,
  };
  if (config.auth) options.auth = config.auth;
  if (config.tls) {
    options.tls = {};
    const ca = file('caFile', config.tls.caFile);
    const cert = file('certFile', config.tls.certFile);
    const key = file('keyFile', config.tls.keyFile);
    if (ca) options.tls.ca = ca;
    if (cert) options.tls.cert = cert;
    if (key) options.tls.key = key;
  }
  return options;
}
