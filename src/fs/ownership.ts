import { constants } from 'node:fs';
import type { ObjectAttrs, SpecialKind } from '../core/types.js';
import { Errno, ErrnoError } from './errno.js';
import type { Vfs } from './vfs.js';

const { S_IFMT, S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK } = constants;
/** Set-group-ID (not in node's fs.constants). */
const S_ISGID = 0o2000;
const R_OK = 4;
const W_OK = 2;
const X_OK = 1;

/** Who made a request: the uid and gid of the calling process (the FUSE request header). */
export interface Caller {
  uid: number;
  gid: number;
}

/**
 * Owner of a new file, directory, symlink or node: the caller, except that a
 * setgid directory gives its group to what is created in it, and its setgid
 * bit to new subdirectories (POSIX, as ext4 and every Linux filesystem do).
 * Returns the permission bits with that bit added where it applies.
 */
export function newOwner(
  caller: Caller,
  parent: ObjectAttrs | undefined,
  mode: number,
  isDir: boolean,
): { uid: number; gid: number; mode: number } {
  const inherits = parent !== undefined && (parent.mode & S_ISGID) !== 0;
  return {
    uid: caller.uid,
    gid: inherits ? parent.gid : caller.gid,
    mode: (mode & 0o7777) | (inherits && isDir ? S_ISGID : 0),
  };
}

/**
 * chown(2) under _POSIX_CHOWN_RESTRICTED, when the kernel does not check it
 * (no default_permissions): only root gives a file away; its owner may change
 * the group to its own (supplementary groups are not in the request, so only
 * the caller's primary group). -1 leaves a field unchanged.
 */
export function chownProblem(caller: Caller, current: ObjectAttrs, uid: number, gid: number): string | undefined {
  if (caller.uid === 0) return undefined;
  if (uid !== -1 && uid !== current.uid) return 'only root can change the owner of a file';
  if (gid !== -1 && gid !== current.gid) {
    if (caller.uid !== current.uid) return 'only the owner or root can change the group of a file';
    if (gid !== caller.gid) return `uid ${caller.uid} is not in group ${gid}`;
  }
  return undefined;
}

/**
 * access(2) as the kernel's own check would answer it (generic_permission,
 * primary group only): used for ACCESS requests, which the kernel sends only
 * when it does not check modes itself. Root passes every read and write
 * check, and execute where any execute bit is set (or on a directory).
 */
export function accessAllowed(caller: Caller, mode: number, uid: number, gid: number, mask: number): boolean {
  const want = mask & (R_OK | W_OK | X_OK);
  if (want === 0) return true;
  if (caller.uid === 0) {
    if (!(want & X_OK)) return true;
    return (mode & S_IFMT) !== S_IFREG || (mode & 0o111) !== 0;
  }
  const shift = caller.uid === uid ? 6 : caller.gid === gid ? 3 : 0;
  const granted = (mode >> shift) & 7;
  return (granted & want) === want;
}

const NODE_KINDS = new Map<number, SpecialKind>([
  [S_IFIFO, 'fifo'],
  [S_IFSOCK, 'socket'],
  [S_IFCHR, 'chardev'],
  [S_IFBLK, 'blockdev'],
]);

/**
 * mknod(2) on the mount: FIFOs, sockets (bind(2)) and device nodes (the
 * kernel allows those to root only) become metadata-only entries; a regular
 * file is created empty, as an open and a close would.
 */
export async function mknodAt(vfs: Vfs, path: string, mode: number, rdev: number, caller?: Caller): Promise<void> {
  const type = mode & S_IFMT;
  if (type === S_IFREG || type === 0) {
    await vfs.release(await vfs.create(path, mode, caller));
    return;
  }
  const kind = NODE_KINDS.get(type);
  if (!kind) throw new ErrnoError(Errno.EINVAL, `mknod ${path}: file type 0o${type.toString(8)}`);
  await vfs.mknod(path, kind, mode, rdev, caller);
}
