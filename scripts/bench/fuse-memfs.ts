/**
 * scripts/bench/fuse-memfs.ts: the new ceiling row of scripts/bench-mount.
 *
 * src/fuse's example in-memory filesystem, mounted through our own FUSE
 * session (no libfuse): 1 MiB WRITE and READ requests, READDIRPLUS.
 *
 *   node --import tsx scripts/bench/fuse-memfs.ts MOUNTPOINT [--prealloc-mib N] [--readers N] [--no-xattrs]
 *
 * Prints "ready" once mounted, unmounts on SIGTERM/SIGINT, exits 0 when the
 * mount goes away from outside, and on SIGUSR2 prints `stats {json}` (FUSE
 * requests per opcode so far), like scripts/bench/memfs.ts.
 */
import { ExampleMemfs } from '../../src/fuse/example-memfs.js';
import { mount } from '../../src/fuse/mount.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const mnt = args[0];
  const flag = (name: string): number | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
  if (!mnt) {
    process.stderr.write('usage: fuse-memfs.ts MOUNTPOINT [--prealloc-mib N] [--readers N] [--no-xattrs]\n');
    process.exit(64);
  }
  const fs = new ExampleMemfs({ preallocMiB: flag('--prealloc-mib') ?? 0, xattrs: !args.includes('--no-xattrs') });
  const m = await mount(fs, mnt, {
    fsname: 'memfs',
    subtype: 'memfs',
    readers: flag('--readers') ?? 2,
    // Like a real filesystem: the kernel may cache entries and attributes for 1 s.
    entryTimeout: 1,
    attrTimeout: 1,
  });
  process.stdout.write('ready\n');
  const stop = (): void => {
    m.unmount().catch((err: Error) => process.stderr.write(`fuse-memfs: ${err.message}\n`));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGUSR2', () => process.stdout.write(`stats ${JSON.stringify(m.session.requestCounts())}\n`));
  await m.closed;
  process.exit(0);
}

main().catch((err: Error) => {
  process.stderr.write(`fuse-memfs: ${err.message}\n`);
  process.exit(1);
});
