import { resolve } from 'node:path';
import type { Lilio } from '../engine/lilio.js';
import { mount as fuseMount } from '../fuse/mount.js';
import type { Session } from '../fuse/session.js';
import { VfsFuseAdapter } from './fuse-adapter.js';
import type { Mounted, MountOptions } from './mount.js';
import { Vfs, vfsOptions } from './vfs.js';

/** How long an unmount waits for a lazily detached session to end before leaving it. */
const LAZY_WAIT_MS = 1_000;

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
  const adapter = new VfsFuseAdapter(vfs, options.metrics, { xattrs: options.xattrs, onError: options.onError });
  const cacheSeconds = options.cacheSeconds ?? 1;
  const mounted = await fuseMount(adapter, mountpoint, {
    fsname: 'lilio',
    subtype: 'lilio',
    allowOther: options.allowOther,
    readOnly: options.readOnly,
    maxRead: 1024 * 1024,
    entryTimeout: cacheSeconds,
    attrTimeout: cacheSeconds,
    log: (line) => lilio.logger.warn(line),
  });
  let unmounted: Promise<number> | undefined;
  return {
    mountpoint,
    vfs,
    session: mounted.session,
    closed: mounted.closed,
    unmount() {
      unmounted ??= (async () => {
        const failures = await vfs.flushAll();
        if (!mounted.session.isClosed) {
          await mounted.unmount().catch(async () => {
            // Busy (a process still has files open): detach lazily, as umount -l would. The session
            // then lives until the last holder closes, so it is not waited for: the process ends
            // (see the CLI) and the kernel fails what the holders do next, as with fuse-native.
            const detached = mounted.unmount({ lazy: true }).catch(() => undefined);
            await Promise.race([detached, new Promise((r) => setTimeout(r, LAZY_WAIT_MS).unref())]);
            // Its reads of /dev/fuse still block libuv threads, and process exit with them.
            // (Writing fusectl's abort file was tried and is not finished: see the branch report.)
          });
        }
        return failures;
      })();
      return unmounted;
    },
  };
}
