import type { Command } from 'commander';
import { type Config, loadConfig } from '../config/load.js';
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

export function configFrom(command: Command): Config {
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
