import type { StorageConfig } from '../config/schema.js';
import { readClientToken } from '../config/token.js';
import type { StorageBackend } from './backend.js';
import { GDriveBackend } from './gdrive.js';
import { HttpBackend } from './http.js';
import { LocalBackend } from './local.js';
import { MemoryBackend, SharedReplicas } from './memory.js';
import { S3Backend } from './s3.js';

/** The one place that maps storage config entries to their backend implementations. */
export function createBackends(configs: readonly StorageConfig[]): StorageBackend[] {
  const shared = new SharedReplicas();
  return configs.map((config) => createBackend(config, shared));
}

export function createBackend(config: StorageConfig, shared = new SharedReplicas()): StorageBackend {
  switch (config.type) {
    case 'local':
      return new LocalBackend({ name: config.name, path: config.path, fsync: config.fsync, directIo: config.directIo });
    case 'memory':
      return new MemoryBackend({ name: config.name, capacityBytes: config.capacity, shared });
    case 'http':
      return new HttpBackend({
        name: config.name,
        url: config.url,
        token: readClientToken(config.tokenFile),
        timeoutMs: config.timeoutMs,
      });
    case 's3':
      return new S3Backend({
        name: config.name,
        endpoint: config.endpoint,
        region: config.region,
        bucket: config.bucket,
        prefix: config.prefix,
        forcePathStyle: config.forcePathStyle,
        credentials:
          config.accessKeyId !== undefined && config.secretAccessKey !== undefined
            ? {
                accessKeyId: config.accessKeyId,
                secretAccessKey: config.secretAccessKey,
                sessionToken: config.sessionToken,
              }
            : undefined,
      });
    case 'gdrive':
      return new GDriveBackend({
        name: config.name,
        folderId: config.folderId,
        credentialsFile: config.credentialsFile,
        rootUrl: config.rootUrl,
      });
  }
}
