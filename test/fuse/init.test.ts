import t from 'tap';
import { decodeInitIn, negotiateInit, WANTED_FLAGS } from '../../src/fuse/init.js';
import { InitFlag, MAX_MINOR_VERSION } from '../../src/fuse/protocol.js';

const opts = { maxWrite: 1024 * 1024, writebackCache: false, maxBackground: 64 };
const ALL = 0xffffffff;

t.test('a current kernel: 1 MiB requests through MAX_PAGES, the flags we want', async (t) => {
  const out = negotiateInit({ major: 7, minor: 41, maxReadahead: 128 * 1024, flags: ALL }, opts);
  if (out.kind !== 'reply') throw new Error(out.kind);
  const b = out.body;
  t.equal(b.length, 64, 'fuse_init_out is 64 bytes');
  t.equal(b.readUInt32LE(0), 7);
  t.equal(b.readUInt32LE(4), MAX_MINOR_VERSION, 'we answer with the newest minor we know');
  t.equal(b.readUInt32LE(8), 128 * 1024, 'max_readahead: not more than the kernel offered');
  const flags = b.readUInt32LE(12);
  for (const name of [
    'ASYNC_READ',
    'ATOMIC_O_TRUNC',
    'EXPORT_SUPPORT',
    'BIG_WRITES',
    'DO_READDIRPLUS',
    'READDIRPLUS_AUTO',
    'PARALLEL_DIROPS',
    'MAX_PAGES',
  ] as const) {
    t.ok(flags & InitFlag[name], name);
  }
  t.notOk(flags & InitFlag.WRITEBACK_CACHE, 'no writeback cache unless asked');
  t.notOk(flags & InitFlag.POSIX_LOCKS, 'locks stay local to the kernel');
  t.notOk(flags & InitFlag.INIT_EXT, 'no flags2');
  t.equal(b.readUInt16LE(16), 64, 'max_background');
  t.equal(b.readUInt32LE(20), 1024 * 1024, 'max_write');
  t.equal(b.readUInt32LE(24), 1, 'time_gran: nanoseconds');
  t.equal(b.readUInt16LE(28), 256, 'max_pages: 1 MiB of 4 KiB pages');
  t.equal(out.conn.minor, MAX_MINOR_VERSION);
  t.equal(out.conn.kernelMinor, 41);
});

t.test('only flags the kernel offered; writeback cache on request', async (t) => {
  const offered = InitFlag.ASYNC_READ | InitFlag.WRITEBACK_CACHE;
  const out = negotiateInit(
    { major: 7, minor: 31, maxReadahead: 1 << 20, flags: offered },
    {
      ...opts,
      writebackCache: true,
    },
  );
  if (out.kind !== 'reply') throw new Error(out.kind);
  t.equal(out.body.readUInt32LE(12), offered);
  t.equal(out.body.readUInt32LE(4), 31, 'an older kernel keeps its minor');
  t.equal(out.body.readUInt16LE(28), 0, 'no max_pages without MAX_PAGES');
  t.equal(WANTED_FLAGS & InitFlag.WRITEBACK_CACHE, 0);
});

t.test('too old, and a newer major', async (t) => {
  const old = negotiateInit({ major: 7, minor: 26, maxReadahead: 0, flags: ALL }, opts);
  t.equal(old.kind, 'refuse');
  t.match(old.kind === 'refuse' ? old.reason : '', /7\.26.*7\.31/);
  const newer = negotiateInit({ major: 8, minor: 0, maxReadahead: 0, flags: ALL }, opts);
  t.equal(newer.kind, 'retry', 'answer 7.x and let the kernel retry');
});

t.test('fuse_init_in decoding', async (t) => {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(7, 0);
  b.writeUInt32LE(38, 4);
  b.writeUInt32LE(131072, 8);
  b.writeUInt32LE(0x1234, 12);
  t.same(decodeInitIn(b, 0), { major: 7, minor: 38, maxReadahead: 131072, flags: 0x1234 });
});
