import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import Fuse from 'fuse-native';
import { ExistsError } from '../core/errors.js';
import type { Lilio } from '../engine/lilio.js';
import type { FuseMetrics } from '../metrics/fuse.js';
import { mountNative } from './mount-native.js';
import { buildOps } from './ops.js';
import { Vfs, vfsOptions } from './vfs.js';

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

export interface Mounted {
  mountpoint: string;
  vfs: Vfs;
  /** Commits every dirty file, then unmounts. Resolves with the number of files that failed to commit. */
  unmount(): Promise<number>;
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
  let unmounted: Promise<number> | undefined;
  return {
    mountpoint: target,
    vfs,
    unmount() {
      unmounted ??= (async () => {
        const failures = await vfs.flushAll();
        await new Promise<void>((resolvePromise) =>
          fuse.unmount((err) => {
            if (err) {
              // Busy (a process still has files open): detach lazily, as umount -l would.
              void run('fusermount', ['-uz', target]).finally(() => resolvePromise());
            } else resolvePromise();
          }),
        );
        return failures;
      })();
      return unmounted;
    },
  };
}
