/**
 * scripts/bench/fuse-memfs.ts: the new ceiling row of scripts/bench-mount.
 *
 * src/fuse's example in-memory filesystem, mounted through our own FUSE
 * session (no libfuse): 1 MiB WRITE and READ requests, READDIRPLUS.
 *
 *   node --import tsx scripts/bench/fuse-memfs.ts MOUNTPOINT [--prealloc-mib N] [--readers N] [--no-xattrs]
 *
 * Prints "ready" once mounted, unmounts on SIGTERM/SIGINT, exits 0 when the
 * mount goes away from outside, and on SIGUSR2 prints `stats {json}` with
 * the same read/write counters as scripts/bench/memfs.ts since the last such
 * line, plus `requests`: FUSE requests per opcode since the mount.
 */
import { ExampleMemfs } from '../../src/fuse/example-memfs.js';
import type { RequestContext } from '../../src/fuse/filesystem.js';
import { mount } from '../../src/fuse/mount.js';

const stats = { writes: 0, writeBytes: 0, maxWrite: 0, reads: 0, readBytes: 0, maxRead: 0 };

/** The example filesystem, counting READ and WRITE sizes. */
class CountingMemfs extends ExampleMemfs {
  override async write(ctx: RequestContext, ino: number, fh: number, offset: number, data: Buffer): Promise<number> {
    stats.writes++;
    stats.writeBytes += data.length;
    stats.maxWrite = Math.max(stats.maxWrite, data.length);
    return super.write(ctx, ino, fh, offset, data);
  }

  override async read(ctx: RequestContext, ino: number, fh: number, offset: number, size: number): Promise<Buffer[]> {
    const out = await super.read(ctx, ino, fh, offset, size);
    let n = 0;
    for (const piece of out) n += piece.length;
    stats.reads++;
    stats.readBytes += n;
    stats.maxRead = Math.max(stats.maxRead, n);
    return out;
  }
}

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
  const fs = new CountingMemfs({ preallocMiB: flag('--prealloc-mib') ?? 0, xattrs: !args.includes('--no-xattrs') });
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
  process.on('SIGUSR2', () => {
    process.stdout.write(`stats ${JSON.stringify({ ...stats, requests: m.session.requestCounts() })}\n`);
    for (const k of Object.keys(stats) as (keyof typeof stats)[]) stats[k] = 0;
  });
  await m.closed;
  process.exit(0);
}

main().catch((err: Error) => {
  process.stderr.write(`fuse-memfs: ${err.message}\n`);
  process.exit(1);
});
