import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { LocalBackend } from '../backends/local.js';
import { ConfigError, describeError, UsageError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { PrometheusNodeMetrics } from '../metrics/node.js';
import { serveMetrics } from '../server/metrics-http.js';
import { StorageNode } from '../server/node.js';
import { TokenSet } from '../server/tokens.js';
import { logFailure } from './failure.js';
import { addLogOptions, type LogFlags, openProcessLog } from './logging.js';
import { parsePort } from './options.js';

/**
 * A temporary file this old belongs to no write in progress: a chunk PUT may
 * last at most the node's request timeout (2 minutes).
 */
const TEMP_FILE_AGE_MS = 10 * 60_000;

interface NodeFlags extends LogFlags {
  dir: string;
  listen: string;
  /** Also a global option (the CLI's --endpoint token): read with optsWithGlobals. */
  tokenFile?: string;
  metricsPort?: string;
  metricsHost: string;
  fsync?: boolean;
}

/** "HOST:PORT", "[::1]:PORT" or ":PORT" (all interfaces). */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new UsageError(`--listen: "${listen}" is not HOST:PORT`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

async function runNode(flags: NodeFlags): Promise<void> {
  const { host, port } = parseListen(flags.listen);
  const metricsPort = flags.metricsPort === undefined ? undefined : parsePort(flags.metricsPort, '--metrics-port');
  if (!flags.tokenFile) throw new UsageError('lilio node needs --token-file FILE (the bearer token clients send)');
  const log = openProcessLog('node', flags);
  try {
    await serveNode(flags, host, port, metricsPort, flags.tokenFile, log.logger);
  } catch (err) {
    logFailure(log, 'node', err);
    throw err;
  } finally {
    log.close();
  }
}

async function serveNode(
  flags: NodeFlags,
  host: string,
  port: number,
  metricsPort: number | undefined,
  tokenPath: string,
  logger: Logger,
): Promise<void> {
  const tokenFile = resolve(tokenPath);
  const tokens = TokenSet.fromFile(tokenFile);
  if ((statSync(tokenFile).mode & 0o077) !== 0) {
    logger.warn({ tokenFile }, `${tokenFile} is readable by other users (chmod 600 it)`);
  }
  const dir = resolve(flags.dir);
  const backend = new LocalBackend({ name: 'node', path: dir, fsync: flags.fsync ?? false });
  // Fail now, not at the first request, when the directory is unusable.
  const health = await backend.health();
  if (!health.ok) throw new ConfigError(`cannot serve ${dir}: ${health.error}`);

  // The node's own series and the process's, without the engine's (a node runs no engine).
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const node = new StorageNode({ backend, tokens, metrics: new PrometheusNodeMetrics(registry) });
  const address = await node.listen(port, host);
  const metricsServer =
    metricsPort !== undefined
      ? await serveMetrics(registry, metricsPort, flags.metricsHost).catch(async (err: unknown) => {
          await node.close();
          throw err;
        })
      : undefined;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  logger.info(
    { dir, url: `http://${shown}:${address.port}` },
    `serving ${dir} on http://${shown}:${address.port}${
      metricsServer ? ` (metrics on ${flags.metricsHost}:${flags.metricsPort})` : ''
    }`,
  );

  // Writes cut short by a crash of an earlier run left temporary files: clear them in the background.
  backend.sweepTemporaryFiles(TEMP_FILE_AGE_MS).then(
    (removed) => {
      if (removed > 0) logger.info({ removed }, `removed ${removed} temporary file(s) left by an earlier run`);
    },
    (err: unknown) => logger.warn({ err }, `cannot sweep temporary files: ${describeError(err)}`),
  );

  await new Promise<void>((done) => {
    const stop = (why: string) => {
      logger.info(`${why}: finishing requests in progress`);
      metricsServer?.close();
      node.close().then(() => {
        logger.info('node stopped');
        done();
      }, done);
    };
    process.once('SIGINT', () => stop('interrupted'));
    process.once('SIGTERM', () => stop('terminated'));
  });
}

export function registerNodeCommand(program: Command): void {
  const node = program
    .command('node')
    .description('serve a directory as a storage node that other Lilio processes use as an "http" backend')
    .requiredOption('--dir <dir>', 'directory that holds the chunks (created if missing)')
    .requiredOption('--listen <host:port>', 'address to listen on, e.g. 0.0.0.0:7400')
    .option('--token-file <file>', 'file holding the bearer tokens clients must send, one per line (required)')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port')
    .option('--metrics-host <host>', 'address for the metrics server', '127.0.0.1')
    .option('--fsync', 'fsync every chunk before acknowledging it (survives power loss; slower)');
  addLogOptions(node).action(async (_flags: NodeFlags, command: Command) => {
    await runNode(command.optsWithGlobals<NodeFlags>());
  });
}
