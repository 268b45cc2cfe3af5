/**
 * Mounting a filesystem: get a /dev/fuse descriptor attached to a mount
 * point, then run a Session on it.
 *
 * As root, we open /dev/fuse ourselves and let util-linux mount(8) call
 * mount(2) with `fd=N` (the descriptor reaches it as its fd 3). Anyone else
 * goes through the setuid fusermount3, which opens /dev/fuse, mounts, and
 * sends the descriptor back over a unix socket (fd-passing.ts).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, statSync } from 'node:fs';
import { fdPassing } from './fd-passing.js';
import type { FuseFilesystem } from './filesystem.js';
import { abortConnection, mountedDevice } from './mount-identity.js';
import { Session, type SessionOptions } from './session.js';

export interface MountOptions extends SessionOptions {
  /** The "device" shown in /proc/mounts and df (default: the subtype). */
  fsname?: string;
  /** Type suffix: /proc/mounts shows fuse.SUBTYPE (default "fuse" alone when unset). */
  subtype?: string;
  allowOther?: boolean;
  /** Let the kernel check permissions against the modes we report (default: on with allowOther). */
  defaultPermissions?: boolean;
  readOnly?: boolean;
  /** Largest READ the kernel sends, in bytes. */
  maxRead?: number;
  /** Mount over a directory that has entries (hidden while mounted). */
  nonempty?: boolean;
  /** 'auto': mount(8) as root, fusermount3 otherwise. */
  method?: 'auto' | 'mount' | 'fusermount3';
  /** Program paths, for tests and unusual systems. */
  mountProgram?: string;
  umountProgram?: string;
  fusermountProgram?: string;
}

export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountError';
  }
}

/** Runs a program, resolving with its exit code and what it printed on stderr. */
function run(cmd: string, args: string[], stdio: (number | 'ignore' | 'pipe')[], env?: NodeJS.ProcessEnv) {
  return new Promise<{ code: number; stderr: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: stdio as never, env: env ?? process.env });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stderr: stderr.trim() }));
  });
}

/** The -o options both mount paths share (fusermount3 adds fd, rootmode, user_id and group_id itself). */
export function commonOptions(o: MountOptions): string[] {
  const out: string[] = [];
  if (o.allowOther) out.push('allow_other');
  if (o.defaultPermissions ?? o.allowOther) out.push('default_permissions');
  if (o.readOnly) out.push('ro');
  if (o.maxRead !== undefined) out.push(`max_read=${o.maxRead}`);
  return out;
}

function checkMountpoint(mountpoint: string, o: MountOptions): number {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(mountpoint);
  } catch (err) {
    throw new MountError(`cannot mount on ${mountpoint}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new MountError(`cannot mount on ${mountpoint}: not a directory`);
  if (!o.nonempty && readdirSync(mountpoint).length > 0) {
    throw new MountError(
      `cannot mount on ${mountpoint}: the directory is not empty (its files would be hidden); ` +
        'empty it, choose another, or pass the nonempty option',
    );
  }
  return st.mode;
}

async function mountAsRoot(mountpoint: string, rootMode: number, o: MountOptions): Promise<number> {
  const fd = openSync('/dev/fuse', 'r+');
  const subtype = o.subtype ? `fuse.${o.subtype}` : 'fuse';
  const opts = [
    'fd=3',
    `rootmode=${(rootMode & 0o170000).toString(8)}`,
    `user_id=${process.getuid?.() ?? 0}`,
    `group_id=${process.getgid?.() ?? 0}`,
    ...commonOptions(o),
  ];
  // -i: no mount.fuse.* helper; -n: nothing to /etc/mtab. The child gets our descriptor as its fd 3.
  const args = ['-n', '-i', '-t', subtype, '-o', opts.join(','), o.fsname ?? o.subtype ?? 'fuse', mountpoint];
  try {
    const { code, stderr } = await run(o.mountProgram ?? 'mount', args, ['ignore', 'ignore', 'pipe', fd]);
    if (code !== 0) throw new MountError(`mount ${mountpoint} failed: ${stderr || `exit code ${code}`}`);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

async function mountWithFusermount(mountpoint: string, o: MountOptions): Promise<number> {
  const passing = fdPassing();
  const [ours, theirs] = passing.socketpair();
  try {
    const opts = [...commonOptions(o)];
    if (o.fsname) opts.push(`fsname=${o.fsname}`);
    if (o.subtype) opts.push(`subtype=${o.subtype}`);
    const args = opts.length > 0 ? ['-o', opts.join(','), '--', mountpoint] : ['--', mountpoint];
    const env = { ...process.env, _FUSE_COMMFD: '3' };
    const program = o.fusermountProgram ?? 'fusermount3';
    const { code, stderr } = await run(program, args, ['ignore', 'ignore', 'pipe', theirs], env);
    if (code !== 0) throw new MountError(`${program} ${mountpoint} failed: ${stderr || `exit code ${code}`}`);
    // fusermount3 sent the descriptor before exiting: it is waiting in the socket.
    return passing.recvFd(ours);
  } finally {
    closeSync(ours);
    closeSync(theirs);
  }
}

/** A mounted filesystem: its session, and the way to take it down. */
export class FuseMount {
  /** The mount's device ("0:N"), read once mounted: the path may later show another mount. */
  device: string | undefined;

  constructor(
    readonly mountpoint: string,
    readonly session: Session,
    private readonly how: 'mount' | 'fusermount3',
    private readonly options: MountOptions,
  ) {}

  /** Resolves when the session ended (unmounted by us or from outside). */
  get closed(): Promise<void> {
    return this.session.closed;
  }

  /** Whether the mountpoint still shows this mount (not detached, not covered by a newer one). */
  get attached(): boolean {
    // Unknown (no /proc/self/mountinfo): the path is all there is to go by.
    return this.device === undefined || mountedDevice(this.mountpoint) === this.device;
  }

  /**
   * Unmounts and waits for the session to end. lazy detaches a busy mount
   * (umount -l); without it a busy mount refuses with the tool's message.
   * A mount no longer at its path (detached from outside, perhaps a newer
   * one mounted there since) is never unmounted by path: that would take the
   * newer one down. Its session ends when its last user closes, or on abort().
   */
  async unmount(opts: { lazy?: boolean } = {}): Promise<void> {
    if (this.session.isClosed) return;
    await this.detach(opts.lazy ?? false);
    await this.session.closed;
  }

  /** Runs umount / fusermount3 -u on our mount (never on a mount that is not ours); does not wait for the session. */
  private async detach(lazy: boolean): Promise<void> {
    if (!this.attached) throw new MountError(`${this.mountpoint} no longer shows this mount: not unmounted by path`);
    const [cmd, args] =
      this.how === 'mount'
        ? [this.options.umountProgram ?? 'umount', [...(lazy ? ['-l'] : []), this.mountpoint]]
        : [this.options.fusermountProgram ?? 'fusermount3', ['-u', ...(lazy ? ['-z'] : []), this.mountpoint]];
    const { code, stderr } = await run(cmd, args, ['ignore', 'ignore', 'pipe']);
    if (code !== 0 && !this.session.isClosed) {
      throw new MountError(`unmounting ${this.mountpoint} failed: ${stderr || `exit code ${code}`}`);
    }
  }

  /**
   * Ends the session at once, whoever still uses the mount (fusectl abort):
   * processes still holding files get ENOTCONN, as after a crash, and the
   * session's reads of /dev/fuse return, so the process can exit (Node joins
   * its thread pool at exit, and a read blocked on a live connection never
   * returns). Detaches the mount first if it is still ours. Resolves when the
   * session closed; rejects when the connection could not be aborted.
   */
  async abort(): Promise<void> {
    if (this.session.isClosed) return;
    if (this.attached) await this.detach(true).catch(() => undefined);
    if (this.session.isClosed) return;
    if (!this.device) throw new MountError(`the device of ${this.mountpoint} is unknown: cannot abort its connection`);
    const failure = abortConnection(this.device);
    if (failure) throw new MountError(failure);
    await this.session.closed;
  }
}

export async function mount(fs: FuseFilesystem, mountpoint: string, options: MountOptions = {}): Promise<FuseMount> {
  const rootMode = checkMountpoint(mountpoint, options);
  const method = options.method ?? 'auto';
  const how = method === 'auto' ? (process.getuid?.() === 0 ? 'mount' : 'fusermount3') : method;
  const fd =
    how === 'mount' ? await mountAsRoot(mountpoint, rootMode, options) : await mountWithFusermount(mountpoint, options);
  const session = new Session(fd, fs, options);
  session.start();
  const mounted = new FuseMount(mountpoint, session, how, options);
  // Wait for INIT so that the caller's first access finds a working mount.
  const failure = await new Promise<Error | undefined>((resolve) => {
    session.once('init', () => resolve(undefined));
    session.once('initFailed', (err: Error) => resolve(err));
    session.once('close', () => resolve(new Error('the kernel closed the session')));
  });
  mounted.device = mountedDevice(mountpoint);
  if (failure) {
    // The kernel answers every access with an error now: take the dead mount down.
    await mounted.unmount({ lazy: true }).catch(() => {});
    throw new MountError(`mounting ${mountpoint} failed during INIT: ${failure.message}`);
  }
  return mounted;
}
