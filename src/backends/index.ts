import type { StorageConfig } from '../config/schema.js';
import { readClientToken } from '../config/token.js';
import type { StorageBackend } from './backend.js';
import { HttpBackend } from './http.js';
import { LocalBackend } from './local.js';
import { MemoryBackend } from './memory.js';

/** The one place that maps a storage config entry to its backend implementation. */
export function createBackend(config: StorageConfig): StorageBackend {
  switch (config.type) {
    case 'local':
      return new LocalBackend({ name: config.name, path: config.path, fsync: config.fsync });
    case 'memory':
      return new MemoryBackend({ name: config.name, capacityBytes: config.capacity });
    case 'http':
      return new HttpBackend({
        name: config.name,
        url: config.url,
        token: readClientToken(config.tokenFile),
        timeoutMs: config.timeoutMs,
      });
  }
}
