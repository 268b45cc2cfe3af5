import type { Command } from 'commander';
import { type Config, loadConfig } from '../config/load.js';
import { UsageError } from '../core/errors.js';
import { Lilio } from '../engine/lilio.js';
import type { Collector } from '../metrics/collector.js';

/** Options every command accepts, before or after its name. */
export interface GlobalOptions {
  config?: string;
  /** A running `lilio server` to talk to instead of the stores. */
  endpoint?: string;
  /** Bearer tokens: the ones a server accepts, or (with --endpoint) the first is presented. */
  tokenFile?: string;
  metadata?: string;
  etcdEndpoints?: string;
}

/** "meta dump" for the dump subcommand of meta: the words a user typed. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Commands that open the stores themselves (mount, scrub, gc, rebalance, meta,
 * server) have no remote form: with --endpoint they would open a new, empty
 * local store and report on it, so they refuse it instead.
 */
export function refuseEndpoint(command: Command): void {
  const { endpoint } = command.optsWithGlobals<GlobalOptions>();
  if (endpoint === undefined) return;
  throw new UsageError(
    `lilio ${commandPath(command)} works on the stores directly and cannot use --endpoint: ` +
      "run it where the server runs, with the server's --config",
  );
}

export function configFrom(command: Command): Config {
  refuseEndpoint(command);
  const options = command.optsWithGlobals<GlobalOptions>();
  return loadConfig({
    configPath: options.config,
    metadata: options.metadata,
    etcdEndpoints: options.etcdEndpoints,
  });
}

/** Opens the engine for one command and always closes it, so background replica writes finish first. */
export async function withEngine<T>(
  command: Command,
  run: (lilio: Lilio) => Promise<T>,
  collector?: Collector,
): Promise<T> {
  const lilio = await Lilio.open(configFrom(command), { collector });
  try {
    return await run(lilio);
  } finally {
    await lilio.close();
  }
}
