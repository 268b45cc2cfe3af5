/**
 * Notifications: messages we send the kernel unasked (unique 0, the code in
 * the error field) to drop what it caches. They go through the thread pool,
 * unlike replies: the kernel may have to wait for a directory lock held by a
 * request that waits for us, and a synchronous write would then deadlock
 * the event loop (libfuse warns of the same for its notify calls).
 */
import { write } from 'node:fs';
import { Errno } from './errno.js';
import { NotifyCode, OUT_HEADER_SIZE } from './protocol.js';
import { writeI64, writeU64 } from './wire.js';

/** Resolves true when the kernel took it, false when it had nothing cached (ENOENT). */
function send(fd: number, code: number, body: Buffer): Promise<boolean> {
  if (fd < 0) return Promise.resolve(false);
  body.writeUInt32LE(body.length, 0);
  body.writeInt32LE(code, 4);
  writeU64(body, 0, 8);
  return new Promise((resolve, reject) => {
    write(fd, body, 0, body.length, null, (err) => {
      if (!err) resolve(true);
      // ENOENT: nothing cached; ENODEV/EBADF: the session is over, so nothing is cached either.
      else if ([Errno.ENOENT, Errno.ENODEV, Errno.EBADF].includes(-(err.errno ?? 0))) resolve(false);
      else reject(err);
    });
  });
}

function withName(size: number, name: string): { body: Buffer; nameAt: number; nameLen: number } {
  const nameLen = Buffer.byteLength(name);
  const body = Buffer.alloc(OUT_HEADER_SIZE + size + nameLen + 1);
  body.write(name, OUT_HEADER_SIZE + size, 'utf8');
  return { body, nameAt: OUT_HEADER_SIZE + size, nameLen };
}

/** Drops cached attributes of ino and its cached pages in [offset, offset+length) (length -1: to the end; offset -1: attributes only). */
export function notifyInvalInode(fd: number, ino: number, offset = 0, length = -1): Promise<boolean> {
  const body = Buffer.alloc(OUT_HEADER_SIZE + 24);
  writeU64(body, ino, OUT_HEADER_SIZE);
  writeI64(body, offset, OUT_HEADER_SIZE + 8);
  writeI64(body, length, OUT_HEADER_SIZE + 16);
  return send(fd, NotifyCode.INVAL_INODE, body);
}

/** Drops the cached name `name` in directory `parent` (and the parent's cached attributes). */
export function notifyInvalEntry(fd: number, parent: number, name: string): Promise<boolean> {
  const { body, nameLen } = withName(16, name);
  writeU64(body, parent, OUT_HEADER_SIZE);
  body.writeUInt32LE(nameLen, OUT_HEADER_SIZE + 8);
  body.writeUInt32LE(0, OUT_HEADER_SIZE + 12);
  return send(fd, NotifyCode.INVAL_ENTRY, body);
}

/** Like notifyInvalEntry, and also tells the kernel that `child` lost that name (inotify sees a delete). */
export function notifyDelete(fd: number, parent: number, child: number, name: string): Promise<boolean> {
  const { body, nameLen } = withName(24, name);
  writeU64(body, parent, OUT_HEADER_SIZE);
  writeU64(body, child, OUT_HEADER_SIZE + 8);
  body.writeUInt32LE(nameLen, OUT_HEADER_SIZE + 16);
  body.writeUInt32LE(0, OUT_HEADER_SIZE + 20);
  return send(fd, NotifyCode.DELETE, body);
}
