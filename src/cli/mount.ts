import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseSize } from '../config/size.js';
import { describeError, InvalidError, LilioError } from '../core/errors.js';
import { Lilio } from '../engine/lilio.js';
import { ErrnoError } from '../fs/errno.js';
import { clearStaleMount, isFuseMounted, mountLilio } from '../fs/mount.js';
import { PrometheusFuseMetrics } from '../metrics/fuse.js';
import { PrometheusCollector } from '../metrics/prometheus.js';
import { serveMetrics } from '../server/metrics-http.js';
import { configFrom } from './context.js';

interface MountFlags {
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

async function runForeground(mountpoint: string, flags: MountFlags, command: Command): Promise<void> {
  if (flags.fuse !== 'libfuse' && flags.fuse !== 'native') {
    throw new InvalidError(`--fuse: "${flags.fuse}" is neither native nor libfuse`);
  }
  const fuse = flags.fuse;
  const config = configFrom(command);
  if (flags.cacheSize !== undefined) {
    const size = parseSize(flags.cacheSize);
    if (size === undefined) throw new InvalidError(`--cache-size: "${flags.cacheSize}" is not a size`);
    config.cache.size = size;
  }
  const collector = new PrometheusCollector();
  const fuseMetrics = new PrometheusFuseMetrics(collector.registry);
  const lilio = await Lilio.open(config, { collector });
  lilio.startBackgroundGc();
  const metricsServer =
    flags.metricsPort !== undefined
      ? await serveMetrics(collector.registry, Number(flags.metricsPort), flags.metricsHost)
      : undefined;
  let mounted: Awaited<ReturnType<typeof mountLilio>>;
  try {
    mounted = await mountLilio(lilio, mountpoint, {
      readOnly: flags.readOnly ?? false,
      allowOther: flags.allowOther ?? false,
      xattrs: flags.xattrs,
      fuse,
      metrics: fuseMetrics,
      onError: (op, err) => {
        if (err instanceof ErrnoError) return;
        if (!(err instanceof LilioError) || LOGGED_CODES.has(err.code)) {
          process.stderr.write(`lilio mount: ${op}: ${describeError(err)}\n`);
        }
      },
    });
  } catch (err) {
    metricsServer?.close();
    await lilio.close();
    throw err;
  }
  const pidFile = pidFileFor(mounted.mountpoint);
  writeFileSync(pidFile, `${process.pid}\n`);
  process.stderr.write(
    `lilio: mounted ${mounted.mountpoint} (${config.source}, N=${config.quorum.n} W=${config.quorum.w} R=${config.quorum.r}${
      metricsServer ? `, metrics on ${flags.metricsHost}:${flags.metricsPort}` : ''
    })\n`,
  );

  await new Promise<void>((resolveRun) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(watcher);
      process.stderr.write(`lilio: ${why}: flushing and unmounting ${mounted.mountpoint}\n`);
      const failures = await mounted.unmount();
      const counts = mounted.requestCounts?.();
      if (counts && process.env.LILIO_FUSE_COUNTS) {
        process.stderr.write(`lilio: FUSE requests ${JSON.stringify(counts)}\n`);
      }
      if (failures > 0) {
        process.stderr.write(`lilio: ${failures} file(s) could not be committed; their previous versions are intact\n`);
        process.exitCode = 1;
      }
      metricsServer?.close();
      await lilio.close().catch((err) => process.stderr.write(`lilio: close: ${describeError(err)}\n`));
      rmSync(pidFile, { force: true });
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

/** Starts the mount in a detached child and returns once the directory is mounted. */
async function runDetached(mountpoint: string, argv: string[]): Promise<void> {
  const target = resolve(mountpoint);
  const logFile = join(tmpdir(), `lilio-mount-${createHash('sha256').update(target).digest('hex').slice(0, 16)}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...process.execArgv, argv[1]!, ...argv.slice(2), '--foreground'], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  child.unref();
  const ok = await waitFor(() => exited || isFuseMounted(target), 30_000);
  if (!ok || exited) {
    const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join('\n');
    throw new LilioError('UNAVAILABLE', `mount of ${target} failed:\n${tail}`);
  }
  console.log(`mounted ${target} (pid ${child.pid}; log ${logFile})`);
}

export function registerMountCommands(program: Command): void {
  program
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
    .option('-f, --foreground', 'stay in the foreground until unmounted (SIGINT/SIGTERM flush and unmount)')
    .action(async (mountpoint: string, flags: MountFlags, command: Command) => {
      // A mount left by a killed process answers even mkdir with ENOTCONN: clear it first.
      await clearStaleMount(mountpoint);
      mkdirSync(mountpoint, { recursive: true });
      if (flags.foreground) await runForeground(mountpoint, flags, command);
      else await runDetached(mountpoint, process.argv);
    });

  program
    .command('umount <mountpoint>')
    .alias('unmount')
    .description('flush every open file, commit, and unmount')
    .action(async (mountpoint: string) => {
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
        if (!(await waitFor(() => !alive(pid) && !isFuseMounted(target), 120_000))) {
          throw new LilioError('TIMEOUT', `the mount process ${pid} did not finish unmounting ${target} in 2 minutes`);
        }
        console.log(`unmounted ${target}`);
        return;
      }
      if (!isFuseMounted(target)) throw new InvalidError(`${target} is not mounted`);
      const { execFileSync } = await import('node:child_process');
      execFileSync('fusermount', ['-u', target], { stdio: 'inherit' });
      rmSync(pidFile, { force: true });
      console.log(`unmounted ${target}`);
    });
}
