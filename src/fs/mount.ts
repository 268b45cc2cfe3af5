import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import Fuse from 'fuse-native';
import { ExistsError } from '../core/errors.js';
import type { Lilio } from '../engine/lilio.js';
import { connectionAlive, mountedDevice } from '../fuse/mount-identity.js';
import type { FuseMetrics } from '../metrics/fuse.js';
import { mountNative } from './mount-native.js';
import { buildOps } from './ops.js';
import { type ShutdownReport, Vfs, vfsOptions } from './vfs.js';

const run = promisify(execFile);

/**
 * libfuse2 splits writes into 4 KiB pieces unless asked for big writes
 * (it still caps them at 128 KiB); fuse-native has no option for these, so
 * they are appended to the -o string it builds.
 *
 * ac_attr_timeout=0: with auto_cache, libfuse keeps a file's page cache on
 * open without asking us for its attributes if it last saw them less than
 * this long ago (default: attr_timeout), so a version another process
 * committed in that window was read from the stale cache. At 0 every open
 * checks mtime and size (close-to-open); it costs one in-process getattr.
 *
 * atomic_o_trunc: without it the kernel turns open(O_TRUNC) into a separate
 * truncate by path, which (like truncate(2)) commits an empty version at
 * once: a cp over a file that then failed or crashed left it empty. With it
 * O_TRUNC reaches open, and the cut commits with the new content.
 */
const EXTRA_FUSE_OPTIONS = 'big_writes,max_write=1048576,ac_attr_timeout=0,atomic_o_trunc';

type FuseOps = ReturnType<typeof buildOps>;

class LilioFuse extends Fuse {
  constructor(
    mountpoint: string,
    private readonly fuseOps: FuseOps,
    options: ConstructorParameters<typeof Fuse>[2],
  ) {
    super(mountpoint, fuseOps, options);
  }

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    return base ? `${base},${EXTRA_FUSE_OPTIONS}` : `-o${EXTRA_FUSE_OPTIONS}`;
  }

  /**
   * fuse-native 2.2.6 answers fgetattr with ops.getattr(path) and drops the descriptor, but a
   * descriptor whose file was since replaced or unlinked must be described as it sees the file
   * (the kernel sizes its reads by it). Its getattr dispatcher does the stat conversion.
   */
  protected override _op_fgetattr(signal: (...args: unknown[]) => void, path: string, fd: number): void {
    const ops = this.fuseOps;
    const getattr = (p: string, cb: (...args: unknown[]) => void) => ops.fgetattr(p, fd, cb);
    super._op_getattr.call({ ops: { getattr } } as unknown as Fuse, signal, path);
  }
}

export interface MountOptions {
  readOnly: boolean;
  allowOther: boolean;
  metrics: FuseMetrics;
  /**
   * Serve user.* extended attributes (default). Off, the xattr calls are left
   * unimplemented: the kernel then stops asking for security.selinux and
   * system.posix_acl_access on every `ls -l`, two FUSE round trips per file.
   */
  xattrs?: boolean;
  /** Kernel attribute and entry cache, seconds. Short: other processes' commits show up quickly. */
  cacheSeconds?: number;
  onError?: (op: string, err: unknown) => void;
  /** 'libfuse' (default): fuse-native over libfuse 2; 'native': our own session, src/fuse. */
  fuse?: 'libfuse' | 'native';
}

/**
 * How a mount goes away. force (SIGTERM, SIGINT, `lilio umount --force`): a
 * file still open for writing is left at its last committed version, as a
 * crash would leave it (never its half-written prefix), everything else is
 * committed, and the mount is detached; its holders then get ENOTCONN.
 * lazy (`lilio umount --lazy`): detached at once, the files already open are
 * served until they close (and commit as usual), then the process ends.
 */
export type UnmountMode = 'force' | 'lazy';

export interface Mounted {
  mountpoint: string;
  vfs: Vfs;
  /** Whether the mountpoint still shows this mount (not detached, not covered by a newer mount). */
  attached(): boolean;
  /**
   * Takes the mount down (see UnmountMode); resolves with what became of the open files. Called
   * again it returns the same promise, except that 'force' cuts short a lazy unmount's wait.
   */
  unmount(mode?: UnmountMode): Promise<ShutdownReport>;
  /** Native session only: resolves when the kernel ended it (unmounted from outside too). */
  closed?: Promise<void>;
  /** Native session only: FUSE requests answered per opcode. */
  requestCounts?(): Record<string, number>;
}

/** Whether `mountpoint` is in /proc/mounts as a FUSE filesystem. */
export function isFuseMounted(mountpoint: string): boolean {
  const target = resolve(mountpoint);
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((line) => {
        const [, point, type] = line.split(' ');
        return point === target.replace(/ /g, '\\040') && type?.startsWith('fuse');
      });
  } catch {
    return false;
  }
}

/**
 * A FUSE mount left by a process that died answers every call with ENOTCONN;
 * it is unmounted so the directory can be mounted again. A live mount is
 * never touched.
 */
export async function clearStaleMount(mountpoint: string): Promise<'none' | 'stale-cleared'> {
  if (!isFuseMounted(mountpoint)) return 'none';
  try {
    statSync(mountpoint);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTCONN') {
      await run('fusermount', ['-uz', mountpoint]);
      return 'stale-cleared';
    }
    throw err;
  }
  throw new ExistsError(
    `${mountpoint} is already mounted by a live filesystem; unmount it first (lilio umount ${mountpoint})`,
  );
}

export async function mountLilio(lilio: Lilio, mountpoint: string, options: MountOptions): Promise<Mounted> {
  const target = resolve(mountpoint);
  if (options.fuse === 'native') {
    const native = await mountNative(lilio, target, options, clearStaleMount);
    return { ...native, requestCounts: () => native.session.requestCounts() };
  }
  await clearStaleMount(target);
  const vfs = new Vfs(lilio, vfsOptions(lilio, options.readOnly));
  const cacheSeconds = options.cacheSeconds ?? 1;
  const ops: Partial<FuseOps> = buildOps(vfs, options.metrics, options.onError);
  if (options.xattrs === false) {
    delete ops.setxattr;
    delete ops.getxattr;
    delete ops.listxattr;
    delete ops.removexattr;
  }
  const fuse = new LilioFuse(target, ops as FuseOps, {
    mkdir: true,
    // Our own deadlines bound every call; fuse-native's 15 s timeout would answer a long
    // flush with ETIMEDOUT while its commit may still land.
    timeout: false,
    allowOther: options.allowOther,
    // Page cache kept across opens, dropped when a file's mtime or size changed (close-to-open).
    autoCache: true,
    attrTimeout: cacheSeconds,
    entryTimeout: cacheSeconds,
    fsname: 'lilio',
    subtype: 'lilio',
    maxRead: 1048576,
  });
  await new Promise<void>((resolvePromise, reject) => fuse.mount((err) => (err ? reject(err) : resolvePromise())));
  // The mount is known by its device from now on: after a detach the path may show a newer mount.
  const device = mountedDevice(target);
  const attached = () => (device === undefined ? isFuseMounted(target) : mountedDevice(target) === device);
  // fuse-native's own unmount is `fusermount -uz PATH`, whatever is mounted there by then: not used.
  const detach = (lazy: boolean) =>
    attached() ? run('fusermount', lazy ? ['-uz', target] : ['-u', target]).then(() => true) : Promise.resolve(false);
  let unmounted: Promise<ShutdownReport> | undefined;
  const lazy = new LazyWait(vfs);
  return {
    mountpoint: target,
    vfs,
    attached,
    unmount(mode: UnmountMode = 'force') {
      if (mode === 'force') lazy.cut();
      unmounted ??= (async () => {
        if (mode === 'lazy') {
          await detach(true).catch(() => false);
          // Until the last holder closed: its RELEASE may never come (the kernel drops what is
          // queued when the connection ends), so the connection's end counts as well.
          await lazy.wait(() => device !== undefined && connectionAlive(device) === false);
          // Cut short (a signal): files still open for writing are left, as with force.
        }
        const report = await vfs.shutdown();
        // Busy (a process still has files open): detached lazily. The process then exits, which
        // closes the connection: what the holders do next fails, as after a crash.
        await detach(false).catch(() => detach(true).catch(() => false));
        return report;
      })();
      return unmounted;
    },
  };
}

/**
 * A lazy unmount's wait: until no descriptor is open on the Vfs (the last
 * holder of the detached mount closed), the session ended, or a signal cut it short.
 */
export class LazyWait {
  private cutShort = false;
  private wake: (() => void) | undefined;

  constructor(private readonly vfs: Vfs) {}

  cut(): void {
    this.cutShort = true;
    this.wake?.();
  }

  async wait(ended: () => boolean): Promise<void> {
    while (!this.cutShort && this.vfs.openHandles > 0 && !ended()) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }
}
