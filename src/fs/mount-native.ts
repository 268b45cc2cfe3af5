import { resolve } from 'node:path';
import type { Lilio } from '../engine/lilio.js';
import { mount as fuseMount } from '../fuse/mount.js';
import type { Session } from '../fuse/session.js';
import { VfsFuseAdapter } from './fuse-adapter.js';
import { LazyWait, type Mounted, type MountOptions, type UnmountMode } from './mount.js';
import { type ShutdownReport, Vfs, vfsOptions } from './vfs.js';

export interface NativeMounted extends Mounted {
  /** Resolves when the kernel ended the session (unmounted by us or from outside). */
  closed: Promise<void>;
  session: Session;
}

/**
 * The Vfs served by our own FUSE session (src/fuse) instead of fuse-native:
 * `lilio mount --fuse native`. Root mounts through mount(8), others through
 * fusermount3 (see src/fuse/mount.ts).
 */
export async function mountNative(
  lilio: Lilio,
  target: string,
  options: MountOptions,
  clearStale: (mountpoint: string) => Promise<unknown>,
): Promise<NativeMounted> {
  const mountpoint = resolve(target);
  await clearStale(mountpoint);
  const vfs = new Vfs(lilio, vfsOptions(lilio, options.readOnly));
  // With other users on the mount the kernel checks their permissions against our modes (POSIX);
  // a mount for its own user alone keeps the old behaviour of letting that user do everything.
  const defaultPermissions = options.allowOther ?? false;
  const adapter = new VfsFuseAdapter(vfs, options.metrics, {
    xattrs: options.xattrs,
    kernelChecksPermissions: defaultPermissions,
    onError: options.onError,
  });
  const cacheSeconds = options.cacheSeconds ?? 1;
  const log = (line: string) => lilio.logger.warn(line);
  const mounted = await fuseMount(adapter, mountpoint, {
    fsname: 'lilio',
    subtype: 'lilio',
    allowOther: options.allowOther,
    defaultPermissions,
    readOnly: options.readOnly,
    maxRead: 1024 * 1024,
    entryTimeout: cacheSeconds,
    attrTimeout: cacheSeconds,
    log,
  });
  const session = mounted.session;
  let unmounted: Promise<ShutdownReport> | undefined;
  const lazy = new LazyWait(vfs);
  return {
    mountpoint,
    vfs,
    session,
    closed: mounted.closed,
    attached: () => mounted.attached,
    unmount(mode: UnmountMode = 'force') {
      if (mode === 'force') lazy.cut();
      unmounted ??= (async () => {
        if (mode === 'lazy') {
          // Detached now; the session ends (ENODEV) when the last holder closes.
          if (mounted.attached) void mounted.unmount({ lazy: true }).catch(() => undefined);
          await lazy.wait(() => session.isClosed);
          // Cut short (a signal): files still open for writing are left, and the connection aborted.
        }
        const report = await vfs.shutdown();
        if (session.isClosed) return report;
        // Not busy: an ordinary unmount, and the session sees ENODEV.
        if (mounted.attached) await mounted.unmount().catch(() => undefined);
        // Busy, or detached from outside while files are open: the connection is aborted, as the
        // process's exit would abort it. Until then the session's reads of /dev/fuse block libuv
        // threads, which Node joins at exit: the process would never end, and a request read
        // during exit would never be answered (its caller stuck in D state).
        if (!session.isClosed) {
          await mounted.abort().catch((err: Error) => log(`could not end the FUSE session: ${err.message}`));
        }
        return report;
      })();
      return unmounted;
    },
  };
}
