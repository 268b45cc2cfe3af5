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
  ConflictError,
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
import { clearStaleMount, isFuseMounted, mountLilio, type UnmountMode } from '../fs/mount.js';
import type { Logger } from '../log/logger.js';
import { PrometheusFuseMetrics } from '../metrics/fuse.js';
import { PrometheusCollector } from '../metrics/prometheus.js';
import { serveMetrics } from '../server/metrics-http.js';
import { configFrom, refuseEndpoint } from './context.js';
import { logFailure } from './failure.js';
import { invocation } from './invocation.js';
import { localFileError } from './local-errors.js';
import { addLogOptions, defaultMountLog, type LogFlags, logOptions, openProcessLog } from './logging.js';
import { parsePort } from './options.js';
import { askControl, serveControl } from './umount-control.js';

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

/** The mount process's control socket (see umount-control.ts), beside its pid file. */
export function controlSocketFor(mountpoint: string): string {
  return pidFileFor(mountpoint).replace(/\.pid$/, '.sock');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed mount process is a zombie until whoever adopted it reaps it: dead, for umount's purposes.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
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
  // Inside a bucket a path is an object key, which stops at 1,024 bytes where Linux allows 4,095:
  // the one ENAMETOOLONG a user cannot guess, so it is said in the log (README: "Path length").
  'NAME_TOO_LONG',
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
  const log = (line: string) => logger.info(line);
  logger.info(
    { mountpoint: mounted.mountpoint, config: config.source },
    `mounted ${mounted.mountpoint} (${config.source}, N=${config.quorum.n} W=${config.quorum.w} R=${config.quorum.r}${
      metricsServer ? `, metrics on ${flags.metricsHost}:${flags.metricsPort}` : ''
    })`,
  );

  let stopping = false;
  let watcher: NodeJS.Timeout | undefined;
  let control: Awaited<ReturnType<typeof serveControl>> | undefined;
  const done = new Promise<void>((resolveRun) => {
    let waitingLazily = false;
    const stop = async (why: string, mode: UnmountMode) => {
      if (stopping) {
        // A signal while a lazy unmount waits for its holders: stop waiting.
        if (waitingLazily && mode === 'force') {
          waitingLazily = false;
          control?.close();
          log(`${why}: no longer waiting for the open files`);
          void mounted.unmount('force');
        }
        return;
      }
      stopping = true;
      waitingLazily = mode === 'lazy';
      clearInterval(watcher);
      // While a lazy unmount waits, `lilio umount --force` (or a plain one, once no writer is left) still reaches it.
      if (mode === 'force') control?.close();
      if (mode === 'lazy') {
        const open = mounted.vfs.openHandles;
        log(`${why}: detached ${mounted.mountpoint}; serving ${open} open file(s) until they close`);
      } else log(`${why}: committing closed files and unmounting ${mounted.mountpoint}`);
      const report = await mounted.unmount(mode);
      const counts = mounted.requestCounts?.();
      if (counts && process.env.LILIO_FUSE_COUNTS) log(`FUSE requests ${JSON.stringify(counts)}`);
      for (const path of report.left) {
        logger.warn(
          `left ${path} at its last committed version: it was still open for writing (uncommitted changes dropped)`,
        );
      }
      if (report.failed.length > 0) {
        logger.error(
          `${report.failed.length} file(s) could not be committed; their previous versions are intact: ${report.failed.join(', ')}`,
        );
        process.exitCode = 1;
      }
      metricsServer?.close();
      await lilio.close().catch((err) => logger.error({ err }, `close: ${describeError(err)}`));
      rmSync(pidFile, { force: true });
      log(`unmounted ${mounted.mountpoint}`);
      resolveRun();
    };
    // A signal cannot be refused: files still being written are left as a crash would leave them.
    process.on('SIGINT', () => void stop('interrupted', 'force'));
    process.on('SIGTERM', () => void stop('terminated', 'force'));
    const outside = () => {
      // Detached from outside: nothing is left to serve once the files still open are closed.
      void stop('unmounted from outside', mounted.vfs.openHandles > 0 ? 'lazy' : 'force');
    };
    // The native session ends when the kernel says the mount is gone (ENODEV), whoever unmounted it.
    void mounted.closed?.then(outside);
    // By device, not path: a newer mount at the same path is not ours.
    watcher = setInterval(() => {
      if (!mounted.attached()) outside();
    }, 1_000);
    void serveControl(controlSocketFor(mounted.mountpoint), {
      writing: () => mounted.vfs.openForWriting(),
      unmount: (mode) => void stop(mode === 'lazy' ? 'lilio umount --lazy' : 'lilio umount', mode),
    }).then(
      (server) => {
        control = server;
        if (stopping) server.close();
      },
      (err) => log(`no control socket (lilio umount will signal instead): ${describeError(err)}`),
    );
  });
  await done;
  control?.close();
  rmSync(controlSocketFor(mounted.mountpoint), { force: true });
  // Whatever still holds the event loop (a fuse-native thread's handle) must not keep a finished mount alive.
  setTimeout(() => process.exit(), 200).unref();
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
      "FUSE implementation: native (Lilio's own session over /dev/fuse, 1 MiB requests) or libfuse (fuse-native over libfuse 2, until it is removed)",
      'native',
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
      else await runDetached(mountpoint, invocation.argv, log.file ?? defaultMountLog(config.home, mountpoint));
    });

  program
    .command('umount <mountpoint>')
    .alias('unmount')
    .description(
      'commit closed files and unmount; refused (busy) while files are open for writing, unless --force or --lazy',
    )
    .option('--force', 'unmount even so: files still open for writing keep their last committed version')
    .option('--lazy', 'detach now; files already open are served until they close, then committed')
    .option('--timeout <seconds>', 'how long the mount process may take to finish before a lazy unmount', '60')
    .action(async (mountpoint: string, options: { timeout: string; force?: boolean; lazy?: boolean }) => {
      const seconds = Number(options.timeout);
      if (!Number.isFinite(seconds) || seconds < 0)
        throw new UsageError(`--timeout: "${options.timeout}" is not a number of seconds`);
      if (options.force && options.lazy) throw new UsageError('--force and --lazy: choose one');
      const target = resolve(mountpoint);
      const pidFile = pidFileFor(target);
      let pid: number | undefined;
      try {
        pid = Number(readFileSync(pidFile, 'utf8').trim());
      } catch {
        pid = undefined;
      }
      if (pid && alive(pid)) {
        const request = options.force ? 'force' : options.lazy ? 'lazy' : 'refuse';
        // A stopped process accepts the connection and never answers: bounded by --timeout too.
        const answer = await askControl(
          controlSocketFor(target),
          request,
          Math.max(1_000, Math.min(seconds * 1000, 10_000)),
        );
        if (answer && 'busy' in answer) {
          throw new ConflictError(
            `${target} is busy: ${answer.busy} file(s) open for writing (${answer.files.join(', ')}); ` +
              'close them, or use --force (they keep their last committed version) or --lazy (detach, finish when closed)',
          );
        }
        // No control socket (a mount process of an older version): a signal, which commits and leaves.
        if (!answer) process.kill(pid, 'SIGTERM');
        if (options.lazy) {
          // Detached at once; the process itself ends when the files open on it are closed.
          if (await waitFor(() => !isFuseMounted(target), Math.min(seconds, 10) * 1000)) {
            console.log(`unmounted ${target} (process ${pid} serves the files still open until they close)`);
            return;
          }
        } else if (await waitFor(() => !alive(pid) && !isFuseMounted(target), seconds * 1000)) {
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
