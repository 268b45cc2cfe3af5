/**
 * Which mount is ours. A path names whatever is mounted there now: after our
 * mount was detached (umount -l, fusermount -uz from outside) a newer mount
 * may sit at the same path, and unmounting "the path" would take that one
 * down. A mount is known by its device instead (st_dev, "0:N" for FUSE), read
 * from /proc/self/mountinfo so that no request reaches the filesystem asking
 * (a stat of our own mountpoint from the event loop would wait for ourselves).
 * N is also the FUSE connection's number in fusectl, through which a
 * connection can be aborted.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const FUSECTL = '/sys/fs/fuse/connections';

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/**
 * The device ("major:minor") of the filesystem seen at `mountpoint` (the
 * topmost mount there), or undefined when nothing is mounted on it.
 */
export function mountedDevice(mountpoint: string, mountinfo = '/proc/self/mountinfo'): string | undefined {
  const target = resolve(mountpoint);
  let text: string;
  try {
    text = readFileSync(mountinfo, 'utf8');
  } catch {
    return undefined;
  }
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 5) continue;
    // Later lines are mounted later: the last one at the path is the one it shows.
    if (unescapeMountPath(fields[4]!) === target) found = fields[2];
  }
  return found;
}

/** The fusectl connection number of a FUSE mount's device (the kernel's dev_t, major << 20 | minor). */
export function connectionOf(device: string): number {
  const [major, minor] = device.split(':').map(Number);
  return ((major ?? 0) << 20) | (minor ?? 0);
}

/**
 * Aborts a FUSE connection through fusectl, as `echo 1 > .../abort` does:
 * every request waiting on it fails (ENOTCONN to the processes that made
 * them) and every read of its /dev/fuse descriptor returns at once. What a
 * crash of the filesystem process leaves, without the crash. Returns the
 * reason when it could not (fusectl not mounted, not permitted).
 */
export function abortConnection(device: string, root = FUSECTL): string | undefined {
  const path = `${root}/${connectionOf(device)}/abort`;
  try {
    writeFileSync(path, '1');
    return undefined;
  } catch (err) {
    return `cannot write ${path}: ${(err as Error).message}`;
  }
}

/**
 * Whether a FUSE connection still exists: its fusectl directory goes when the
 * kernel ends it (the last file of a lazily detached mount closed). Undefined
 * when fusectl is not mounted here, so nothing can be told.
 */
export function connectionAlive(device: string, root = FUSECTL): boolean | undefined {
  if (!existsSync(root) || !existsSync(`${root}/..`) || mountedDevice(root) === undefined) return undefined;
  return existsSync(`${root}/${connectionOf(device)}`);
}
