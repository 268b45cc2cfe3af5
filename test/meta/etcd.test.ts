import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { EtcdMetadataStore } from '../../src/meta/etcd.js';
import type { EtcdStoreOptions } from '../../src/meta/etcd-client.js';
import { metaContract } from '../contracts/meta.js';
import { startEtcd } from '../fixtures/etcd.js';

const etcd = await startEtcd(t);

export function storeOptions(prefix: string, overrides: Partial<EtcdStoreOptions> = {}): EtcdStoreOptions {
  return {
    endpoints: etcd.endpoints,
    prefix,
    dialTimeoutMs: 2_000,
    requestTimeoutMs: 5_000,
    maxTxnOps: 128,
    ...overrides,
  };
}

/** Deletes everything under a prefix (each store in this file gets its own). */
async function wipe(prefix: string): Promise<void> {
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    await client.delete().prefix(`${prefix}/`);
  } finally {
    client.close();
  }
}

metaContract(t, async () => {
  const prefix = `/contract-${randomBytes(4).toString('hex')}`;
  return { store: new EtcdMetadataStore(storeOptions(prefix)), cleanup: () => wipe(prefix) };
});
