import { createRequire } from 'node:module';
import type * as Etcd3Library from 'etcd3';

/**
 * The etcd3 client library, loaded when a store first needs it: with grpc-js
 * and its protobuf definitions it adds about 30 MB to a process, which every
 * Lilio process would pay (a mount on SQLite, each CLI command) if it came
 * with the registry's import. etcd3 is CommonJS, so it can be required on
 * demand without making opening a store asynchronous.
 */
let library: typeof Etcd3Library | undefined;

export function etcd3(): typeof Etcd3Library {
  library ??= createRequire(import.meta.url)('etcd3') as typeof Etcd3Library;
  return library;
}

/** Whether etcd3 was loaded (it is what the store's errors come from: none before). */
export function etcd3Loaded(): boolean {
  return library !== undefined;
}
