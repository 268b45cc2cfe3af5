/**
 * The native addon (native/fuse_fd.c, built by node-gyp at `npm ci`) that
 * receives a descriptor over a unix socket: only the fusermount3 path needs
 * it, so it is loaded on first use and a root mount works without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FdPassing {
  /** An AF_UNIX stream socket pair, close-on-exec. */
  socketpair(): [number, number];
  /** The descriptor waiting on the socket; throws (code EAGAIN) when none is. */
  recvFd(socket: number): number;
}

let loaded: FdPassing | undefined;

/** Walks up from this file to the package root's build/Release (src/fuse under tsx, dist/src/fuse when built). */
function addonPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'fuse_fd.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

export function fdPassing(): FdPassing {
  if (loaded) return loaded;
  const path = addonPath();
  if (!path) {
    throw new Error(
      'the fuse_fd native addon is not built (build/Release/fuse_fd.node): run `npm ci` or `npx node-gyp rebuild` ' +
        'with a C compiler installed; it is only needed to mount as a non-root user through fusermount3',
    );
  }
  loaded = createRequire(import.meta.url)(path) as FdPassing;
  return loaded;
}
