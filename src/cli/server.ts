import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { describeError, UsageError } from '../core/errors.js';
import { Lilio } from '../engine/lilio.js';
import type { Logger } from '../log/logger.js';
import { PrometheusHttpMetrics } from '../metrics/http.js';
import { PrometheusCollector } from '../metrics/prometheus.js';
import { PrometheusS3Metrics } from '../metrics/s3.js';
import { defaultCredentialsPath, KeyRing } from '../s3/credentials.js';
import { S3Server } from '../s3/server.js';
import { ApiServer } from '../server/api.js';
import { serveMetrics } from '../server/metrics-http.js';
import { TokenSet } from '../server/tokens.js';
import { configFrom, type GlobalOptions } from './context.js';
import { logFailure } from './failure.js';
import { addLogOptions, type LogFlags, openProcessLog } from './logging.js';
import { parsePort } from './options.js';

interface ServerFlags extends LogFlags {
  listen: string;
  metricsPort?: string;
  metricsHost?: string;
  grace: string;
  s3Listen?: string;
  s3Domain?: string;
  s3Credentials?: string;
  s3Region?: string;
}

/** HOST:PORT, [IPv6]:PORT or :PORT (all interfaces); port 0 picks a free one. */
export function parseListen(text: string, what = '--listen'): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new UsageError(`${what}: "${text}" is not HOST:PORT`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

function url(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

async function runServer(flags: ServerFlags, command: Command): Promise<void> {
  const { tokenFile } = command.optsWithGlobals<GlobalOptions>();
  if (!tokenFile) throw new UsageError('lilio server needs --token-file FILE (bearer tokens, one per line)');
  const tokens = TokenSet.fromFile(tokenFile);
  const listen = parseListen(flags.listen);
  const metricsPort = flags.metricsPort === undefined ? undefined : parsePort(flags.metricsPort, '--metrics-port');
  const graceSeconds = Number(flags.grace);
  if (!Number.isFinite(graceSeconds) || graceSeconds < 0)
    throw new UsageError(`--grace: "${flags.grace}" is not seconds`);
  const config = configFrom(command);
  const log = openProcessLog('server', flags, config.logging);
  try {
    await serve(flags, config, tokens, listen, metricsPort, graceSeconds, log.logger);
  } catch (err) {
    logFailure(log, 'server', err);
    throw err;
  } finally {
    log.close();
  }
}

async function serve(
  flags: ServerFlags,
  config: ReturnType<typeof configFrom>,
  tokens: TokenSet,
  listen: { host: string; port: number },
  metricsPort: number | undefined,
  graceSeconds: number,
  logger: Logger,
): Promise<void> {
  const s3Listen = flags.s3Listen === undefined ? undefined : parseListen(flags.s3Listen, '--s3-listen');
  const s3Keys = s3Listen
    ? new KeyRing(flags.s3Credentials ?? config.s3.credentialsFile ?? defaultCredentialsPath(config.home))
    : undefined;
  const collector = new PrometheusCollector();
  const lilio = await Lilio.open(config, { collector, logger });
  const api = new ApiServer(lilio, {
    tokens,
    metrics: new PrometheusHttpMetrics(collector.registry),
    log: (line) => logger.warn(line),
  });
  // One engine for both endpoints: the same caches, sessions and backpressure, whichever protocol a client speaks.
  const s3 = s3Keys
    ? new S3Server(lilio, {
        keys: s3Keys,
        domain: flags.s3Domain ?? config.s3.domain,
        region: flags.s3Region ?? config.s3.region,
        metrics: new PrometheusS3Metrics(collector.registry),
        log: (line) => logger.warn(`s3: ${line}`),
      })
    : undefined;
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  let address: AddressInfo;
  let s3Address: AddressInfo | undefined;
  try {
    if (metricsPort !== undefined) {
      metricsServer = await serveMetrics(collector.registry, metricsPort, flags.metricsHost ?? listen.host);
    }
    address = await api.listen(listen.port, listen.host);
    if (s3 && s3Listen) s3Address = await s3.listen(s3Listen.port, s3Listen.host);
  } catch (err) {
    metricsServer?.close();
    await api.close(0).catch(() => undefined);
    await lilio.close();
    throw err;
  }
  lilio.startBackgroundGc();
  collector.setGarbageBacklog(await lilio.meta.garbageCount());
  collector.setLiveSessions((await lilio.meta.listSessions()).length);
  const metricsAddress = metricsServer?.address() as AddressInfo | undefined;
  logger.info(
    { url: url(address), config: config.source },
    `serving ${url(address)} (${config.source}, N=${config.quorum.n} W=${config.quorum.w} R=${config.quorum.r}${
      metricsAddress ? `, metrics on ${url(metricsAddress)}/metrics` : ''
    })`,
  );
  if (s3Address && s3Keys) {
    const count = s3Keys.size;
    logger.info(
      { url: url(s3Address) },
      `S3 API on ${url(s3Address)} (${count} access key${count === 1 ? '' : 's'} in ${s3Keys.path}${
        count === 0 ? ': add one with `lilio s3 keys add`' : ''
      })`,
    );
  }

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(`${why}: finishing requests in progress (up to ${graceSeconds} s)`);
      await Promise.all([api.close(graceSeconds * 1000), s3?.close(graceSeconds * 1000)]);
      metricsServer?.close();
      await lilio.close().catch((err) => logger.error({ err }, `close: ${describeError(err)}`));
      logger.info('server stopped');
      resolve();
    };
    process.once('SIGINT', () => void stop('interrupted'));
    process.once('SIGTERM', () => void stop('terminated'));
  });
}

export function registerServerCommand(program: Command): void {
  const server = program
    .command('server')
    .description('serve the HTTP API over the configured stores (bearer tokens from --token-file)')
    .option('--listen <host:port>', 'address of the API', '127.0.0.1:8080')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port (GET /metrics)')
    .option('--metrics-host <host>', 'address of the metrics endpoint (default: the --listen host)')
    .option('--token-file <file>', 'bearer tokens the API accepts, one per line (required)')
    .option('--s3-listen <host:port>', 'also serve the S3 API here (same engine; keys from `lilio s3 keys`)')
    .option('--s3-domain <domain>', 'virtual-host-style S3 addressing: BUCKET.DOMAIN (default: config s3.domain)')
    .option('--s3-credentials <file>', 'S3 access keys file (default: config s3.credentialsFile, else $LILIO_HOME)')
    .option('--s3-region <region>', 'the region the S3 API reports (default: config s3.region, us-east-1)')
    .option('--grace <seconds>', 'on SIGTERM, how long requests in progress may take to finish', '10');
  addLogOptions(server).action((flags: ServerFlags, command: Command) => runServer(flags, command));
}
