import type { MetadataConfig } from '../config/schema.js';
import { EtcdMetadataStore } from './etcd.js';
import { etcdOptionsFrom } from './etcd-options.js';
import { LocalMetadataStore } from './local.js';
import { MemoryMetadataStore } from './memory.js';
import type { MetadataStore } from './store.js';

/** The one place that maps a metadata config to its store implementation. */
export function openMetadataStore(config: MetadataConfig, defaultPath: string): MetadataStore {
  switch (config.type) {
    case 'memory':
      return new MemoryMetadataStore();
    case 'local':
      return LocalMetadataStore.open({ path: config.path ?? defaultPath, synchronous: config.synchronous });
    case 'etcd':
      return new EtcdMetadataStore(etcdOptionsFrom(config.etcd));
  }
}
