/**
 * The local store's writer thread (see local-writer.ts): one connection of
 * its own to the store's file, on which it runs the store's methods as the
 * main thread's LocalMetadataStore asks, one request at a time. SQLite's busy
 * wait for the write lock happens here.
 */
import { workerData } from 'node:worker_threads';
import { type Handler, serveRequests } from '../threads/protocol.js';
import { LocalMetadataStore } from './local.js';
import type { WriterOptions } from './local-writer.js';

const options = workerData as WriterOptions;
/** Opened by the first request, so that a failure to open is that request's answer, and the next one retries. */
let store: LocalMetadataStore | undefined;

type Method = (...args: unknown[]) => unknown;

/** Every method of the store by name: which ones the main thread sends here is its choice (IN_WRITER). */
function method(name: string): Handler {
  return async ({ args }) => {
    store ??= LocalMetadataStore.openWriter(options);
    const run = (store as unknown as Record<string, Method>)[name]!;
    return { result: await run.apply(store, args as unknown[]) };
  };
}

const handlers: Record<string, Handler> = {};
for (const name of Object.getOwnPropertyNames(LocalMetadataStore.prototype)) {
  if (name !== 'constructor' && name !== 'close') handlers[name] = method(name);
}
handlers.close = async () => {
  const closing = store;
  store = undefined;
  await closing?.close();
  return { result: undefined };
};

// Not below the main thread's priority: a commit is what a close() or fsync() through the mount waits for.
serveRequests(handlers, { yieldToMain: false });
