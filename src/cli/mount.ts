import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { parseSize } from '../config/size.js';
import {
  describeError,
  InvalidError,
  LilioError,
  NotDirError,
  NotEmptyError,
  NotFoundError,
  UsageError,
} from '../core/errors.js';
import { Lilio } from '../engine/lilio.js';
import { ErrnoError } from '../fs/errno.js';
import { clearStaleMount, isFuseMounted, mountLilio } from '../fs/mount.js';
import type { Logger } from '../log/logger.js';
import { PrometheusFuseMetrics } from '../metrics/fuse.js';
import { PrometheusCollector } from '../metrics/prometheus.js';
import { serveMetrics } from '../server/metrics-http.js';
import { configFrom, refuseEndpoint } from './context.js';
import { logFailure } from './failure.js';
import { localFileError } from './local-errors.js';
import { addLogOptions, defaultMountLog, type LogFlags, logOptions, openProcessLog } from './logging.js';
import { parsePort } from './options.js';

interface MountFlags extends LogFlags {
  metricsPort?: string;
  metricsHost: string;
  readOnly?: boolean;
  allowOther?: boolean;
  foreground?: boolean;
  cacheSize?: string;
  /** false with --no-xattrs. */
  xattrs: boolean;
  fuse: string;
}

const runTool = promisify(execFile);

/** Where a mount process leaves its pid, so `lilio umount` can ask it to flush and leave. */
export function pidFileFor(mountpoint: string): string {
  const hash = createHash('sha256').update(resolve(mountpoint)).digest('hex').slice(0, 16);
  return join(tmpdir(), `lilio-mount-${hash}.pid`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** Errors worth an operator's attention; ENOENT and friends are ordinary answers. */
const LOGGED_CODES = new Set([
  'QUORUM',
  'UNAVAILABLE',
  'INTEGRITY',
  'TIMEOUT',
  'NO_SPACE',
  'CONFLICT',
  'COMMIT_UNKNOWN',
]);

/** Option values are checked before detaching, so a bad one is bad usage here, not a line in a log. */
function cacheSizeOption(flags: MountFlags): number | undefined {
  if (flags.cacheSize === undefined) return undefined;
  const size = parseSize(flags.cacheSize);
  if (size === undefined) throw new UsageError(`--cache-size: "${flags.cacheSize}" is not a size`);
  return size;
}

function metricsPortOption(flags: MountFlags): number | undefined {
  return flags.metricsPort === undefined ? undefined : parsePort(flags.metricsPort, '--metrics-port');
}

async function runForeground(mountpoint: string, flags: MountFlags, command: Command): Promise<void> {
  if (flags.fuse !== 'libfuse' && flags.fuse !== 'native') {
    throw new InvalidError(`--fuse: "${flags.fuse}" is neither native nor libfuse`);
  }
  const fuse = flags.fuse;
  const config = configFrom(command);
  const cacheSize = cacheSizeOption(flags);
  if (cacheSize !== undefined) config.cache.size = cacheSize;
  const metricsPort = metricsPortOption(flags);
  const log = openProcessLog('mount', flags, config.logging);
  const logger = log.logger;
  try {
    await serveMount(mountpoint, flags, config, fuse, metricsPort, logger);
  } catch (err) {
    // The log says why the mount ended too, not only the terminal (or the starting process) that saw it.
    logFailure(log, `mount of ${resolve(mountpoint)}`, err);
    throw err;
  } finally {
    log.close();
  }
}

async function serveMount(
  mountpoint: string,
  flags: MountFlags,
  config: ReturnType<typeof configFrom>,
  fuse: 'libfuse' | 'native',
  metricsPort: number | undefined,
  logger: Logger,
): Promise<void> {
  const collector = new PrometheusCollector();
  const fuseMetrics = new PrometheusFuseMetrics(collector.registry);
  const lilio = await Lilio.open(config, { collector, logger });
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  let mounted: Awaited<ReturnType<typeof mountLilio>>;
  try {
    // Inside the try: a port in use must close the engine, or its timers keep the process alive.
    if (metricsPort !== undefined)
      metricsServer = await serveMetrics(collector.registry, metricsPort, flags.metricsHost);
    mounted = await mountLilio(lilio, mountpoint, {
      readOnly: flags.readOnly ?? false,
      allowOther: flags.allowOther ?? false,
      xattrs: flags.xattrs,
      fuse,
      metrics: fuseMetrics,
      onError: (op, err) => {
        if (err instanceof ErrnoError) return;
        if (!(err instanceof LilioError) || LOGGED_CODES.has(err.code)) {
          logger.error({ op, code: err instanceof LilioError ? err.code : undefined }, `${op}: ${describeError(err)}`);
        } else if (logger.isLevelEnabled('debug')) logger.debug({ op, code: err.code }, `${op}: ${describeError(err)}`);
      },
    });
  } catch (err) {
    metricsServer?.close();
    await lilio.close();
    throw err;
  }
  lilio.startBackgroundGc();
  const pidFile = pidFileFor(mounted.mountpoint);
  writeFileSync(pidFile, `${process.pid}\n`);
  logger.info(
    { mountpoint: mounted.mountpoint, config: config.source },
    `mounted ${mounted.mountpoint} (${config.source}, N=${config.quorum.n} W=${config.quorum.w} R=${config.quorum.r}${
      metricsServer ? `, metrics on ${flags.metricsHost}:${flags.metricsPort}` : ''
    })`,
  );

  await new Promise<void>((resolveRun) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(watcher);
      logger.info(`${why}: flushing and unmounting ${mounted.mountpoint}`);
      const failures = await mounted.unmount();
      const counts = mounted.requestCounts?.();
      if (counts && process.env.LILIO_FUSE_COUNTS) logger.info({ counts }, `FUSE requests ${JSON.stringify(counts)}`);
      if (failures > 0) {
        logger.error({ failures }, `${failures} file(s) could not be committed; their previous versions are intact`);
        process.exitCode = 1;
      }
      metricsServer?.close();
      await lilio.close().catch((err) => logger.error({ err }, `close: ${describeError(err)}`));
      rmSync(pidFile, { force: true });
      logger.info(`unmounted ${mounted.mountpoint}`);
      resolveRun();
      // A native session detached lazily (files still open) keeps a read of /dev/fuse pending,
      // which would keep the process alive: leave once everything above is done.
      if (mounted.closed) setTimeout(() => process.exit(), 200).unref();
    };
    process.once('SIGINT', () => void stop('interrupted'));
    process.once('SIGTERM', () => void stop('terminated'));
    // The native session ends when the kernel says the mount is gone (ENODEV), whoever unmounted it.
    void mounted.closed?.then(() => stop('unmounted from outside'));
    // Unmounted from outside (fusermount -u): nothing is left to serve.
    const watcher = setInterval(() => {
      if (!isFuseMounted(mounted.mountpoint)) void stop('unmounted from outside');
    }, 1_000);
  });
}

/**
 * The mountpoint itself is created if missing, but never a tree of parents:
 * a typo (/mnt/lilo/data) must not silently make directories. libfuse refuses
 * a non-empty directory; checked here so the reason is one line, not a log.
 */
function prepareMountpoint(mountpoint: string): void {
  const target = resolve(mountpoint);
  let entry: Stats | undefined;
  try {
    entry = statSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw localFileError(err, target);
  }
  if (entry === undefined) {
    const parent = dirname(target);
    if (!existsSync(parent))
      throw new NotFoundError(`cannot mount on ${target}: its parent directory ${parent} does not exist`);
    try {
      mkdirSync(target);
    } catch (err) {
      throw localFileError(err, target);
    }
    return;
  }
  if (!entry.isDirectory()) throw new NotDirError(`cannot mount on ${target}: not a directory`);
  if (readdirSync(target).length > 0)
    throw new NotEmptyError(`cannot mount on ${target}: the directory is not empty (mount on an empty one)`);
}

/**
 * Starts the mount in a detached child and returns once the directory is
 * mounted. The child logs to `logFile`; what it prints outside its log (its
 * one-line failure, anything native code says) goes to LOG.stderr, emptied
 * at every start, so a failure is explained by this run's words only.
 */
async function runDetached(mountpoint: string, argv: string[], logFile: string): Promise<void> {
  const target = resolve(mountpoint);
  mkdirSync(dirname(logFile), { recursive: true });
  const stderrFile = `${logFile}.stderr`;
  const output = openSync(stderrFile, 'w', 0o640);
  const args = [...process.execArgv, argv[1]!, ...argv.slice(2), '--foreground'];
  if (!argv.includes('--log-file')) args.push('--log-file', logFile);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', output, output] });
  closeSync(output);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  child.unref();
  const ok = await waitFor(() => exited || isFuseMounted(target), 30_000);
  if (!ok || exited) {
    if (!exited) child.kill('SIGTERM');
    const written = readFileSync(stderrFile, 'utf8').trim().split('\n');
    // The child's own one-line error ("lilio: ..."), else its last line.
    const reason =
      [...written]
        .reverse()
        .find((line) => line.startsWith('lilio: '))
        ?.slice('lilio: '.length) ??
      written.at(-1) ??
      '';
    throw new LilioError(
      'UNAVAILABLE',
      `mount of ${target} failed: ${exited ? reason || 'the mount process exited' : 'not mounted after 30 s'} (log: ${logFile})`,
    );
  }
  console.log(`mounted ${target} (pid ${child.pid}; log ${logFile})`);
}

/** `fusermount -uz`: detaches at once, whatever the filesystem behind it is doing. */
async function lazyUnmount(target: string): Promise<void> {
  try {
    await runTool('fusermount', ['-uz', target], { timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    throw new LilioError('UNAVAILABLE', `fusermount -uz ${target} failed: ${stderr || describeError(err)}`);
  }
}

export function registerMountCommands(program: Command): void {
  const mount = program
    .command('mount <mountpoint>')
    .description('mount every bucket as a folder of MOUNTPOINT')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port')
    .option('--metrics-host <host>', 'address for the metrics port', '127.0.0.1')
    .option('--read-only', 'refuse every change (EROFS)')
    .option('--allow-other', 'let other users use the mount (needs user_allow_other in /etc/fuse.conf unless root)')
    .option('--cache-size <size>', 'plaintext chunk cache (default 256MiB)')
    .option(
      '--fuse <impl>',
      "FUSE implementation: libfuse (fuse-native over libfuse 2) or native (Lilio's own session, 1 MiB requests)",
      'libfuse',
    )
    .option('--no-xattrs', 'no extended attributes (ENOTSUP): `ls -l` then costs one FUSE call per file, not three')
    .option('-f, --foreground', 'stay in the foreground until unmounted (SIGINT/SIGTERM flush and unmount)');
  addLogOptions(mount)
    .addHelpText('after', '\nIn the background the log goes to $LILIO_HOME/logs/mount-PATH.log unless --log-file says.')
    .action(async (mountpoint: string, flags: MountFlags, command: Command) => {
      // Before touching the mountpoint or detaching: a child would only log the refusal.
      refuseEndpoint(command);
      cacheSizeOption(flags);
      metricsPortOption(flags);
      const config = configFrom(command);
      const log = logOptions('mount', flags, config.logging);
      // A mount left by a killed process answers even mkdir with ENOTCONN: clear it first.
      await clearStaleMount(mountpoint);
      prepareMountpoint(mountpoint);
      if (flags.foreground) await runForeground(mountpoint, flags, command);
      else await runDetached(mountpoint, process.argv, log.file ?? defaultMountLog(config.home, mountpoint));
    });

  program
    .command('umount <mountpoint>')
    .alias('unmount')
    .description('flush every open file, commit, and unmount (a dead or stuck mount is detached lazily)')
    .option('--timeout <seconds>', 'how long the mount process may take to flush before a lazy unmount', '60')
    .action(async (mountpoint: string, options: { timeout: string }) => {
      const seconds = Number(options.timeout);
      if (!Number.isFinite(seconds) || seconds < 0)
        throw new UsageError(`--timeout: "${options.timeout}" is not a number of seconds`);
      const target = resolve(mountpoint);
      const pidFile = pidFileFor(target);
      let pid: number | undefined;
      try {
        pid = Number(readFileSync(pidFile, 'utf8').trim());
      } catch {
        pid = undefined;
      }
      if (pid && alive(pid)) {
        process.kill(pid, 'SIGTERM');
        if (await waitFor(() => !alive(pid) && !isFuseMounted(target), seconds * 1000)) {
          console.log(`unmounted ${target}`);
          return;
        }
        if (!isFuseMounted(target)) {
          console.log(`unmounted ${target} (process ${pid} is still finishing)`);
          return;
        }
        // A process that does not answer (stopped, stuck on a backend) must not hang umount.
        await lazyUnmount(target);
        throw new LilioError(
          'TIMEOUT',
          `the mount process ${pid} did not unmount ${target} within ${seconds} s: detached it lazily (fusermount -uz); ` +
            'files it had not committed keep their previous versions',
        );
      }
      if (!isFuseMounted(target)) throw new InvalidError(`${target} is not mounted`);
      // No process behind it: a dead mount (every call answers ENOTCONN). A lazy unmount never blocks on it.
      await lazyUnmount(target);
      rmSync(pidFile, { force: true });
      console.log(`unmounted ${target} (its mount process was gone)`);
    });
}
