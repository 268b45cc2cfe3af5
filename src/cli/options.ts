import { UsageError } from '../core/errors.js';

/** A TCP port given on the command line; a value that is not one is bad usage (exit 2). */
export function parsePort(text: string, what: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port > 65_535) throw new UsageError(`${what}: "${text}" is not a port (0-65535)`);
  return port;
}
