import t from 'tap';
import { DirectoryListing } from '../../src/fuse/dirents.js';
import { decodeSetattr } from '../../src/fuse/dispatch.js';
import { Errno, errnoOf, FuseErrno, fuseError } from '../../src/fuse/errno.js';
import type { Attr } from '../../src/fuse/filesystem.js';
import { LookupCounts } from '../../src/fuse/lookups.js';
import * as P from '../../src/fuse/protocol.js';
import {
  encodeAttr,
  encodeAttrOut,
  encodeEntry,
  encodeStatxOut,
  readI64,
  readU64,
  writeI64,
  writeU64,
} from '../../src/fuse/wire.js';

// Sizes and offsets below were printed with sizeof/offsetof from Debian's
// /usr/include/linux/fuse.h (protocol 7.38) and, for STATX, the 7.39 header.

const attr: Attr = {
  ino: 0x1_0000_0002,
  size: 5_000_000_000,
  blocks: 9_765_625,
  atime: 1_700_000_001,
  atimeNs: 11,
  mtime: 1_700_000_002,
  mtimeNs: 22,
  ctime: -5,
  ctimeNs: 33,
  btime: 1_600_000_000,
  btimeNs: 44,
  mode: 0o100644,
  nlink: 3,
  uid: 1000,
  gid: 1001,
  rdev: (8 << 8) | 1,
  blksize: 4096,
};

t.test('the kernel header sizes', async (t) => {
  t.equal(P.IN_HEADER_SIZE, 40, 'fuse_in_header');
  t.equal(P.OUT_HEADER_SIZE, 16, 'fuse_out_header');
  t.equal(P.ATTR_SIZE, 88, 'fuse_attr');
  t.equal(P.ENTRY_OUT_SIZE, 128, 'fuse_entry_out');
  t.equal(P.ATTR_OUT_SIZE, 104, 'fuse_attr_out');
  t.equal(P.INIT_IN_SIZE, 64, 'fuse_init_in');
  t.equal(P.INIT_OUT_SIZE, 64, 'fuse_init_out');
  t.equal(P.OPEN_OUT_SIZE, 16, 'fuse_open_out');
  t.equal(P.WRITE_IN_SIZE, 40, 'fuse_write_in');
  t.equal(P.STATFS_OUT_SIZE, 80, 'fuse_statfs_out');
  t.equal(P.DIRENT_HEADER_SIZE, 24, 'fuse_dirent up to name');
  t.equal(P.DIRENTPLUS_HEADER_SIZE, 152, 'fuse_direntplus up to name');
  t.equal(P.STATX_OUT_SIZE, 288, 'fuse_statx_out');
});

t.test('64-bit fields round-trip above 2^32 and below zero', async (t) => {
  const b = Buffer.alloc(8);
  for (const v of [0, 1, 0xffff_ffff, 0x1_0000_0000, 2 ** 53 - 1]) {
    writeU64(b, v, 0);
    t.equal(readU64(b, 0), v);
    t.equal(b.readBigUInt64LE(0), BigInt(v), `${v} as the kernel reads it`);
  }
  for (const v of [-1, -5, -(2 ** 40), 2 ** 40]) {
    writeI64(b, v, 0);
    t.equal(readI64(b, 0), v);
    t.equal(b.readBigInt64LE(0), BigInt(v), `${v} signed`);
  }
});

t.test('fuse_attr: every field at its offset', async (t) => {
  const b = Buffer.alloc(100, 0xee);
  encodeAttr(b, 4, attr);
  const at = (o: number) => 4 + o;
  t.equal(b.readBigUInt64LE(at(0)), 0x1_0000_0002n, 'ino @0');
  t.equal(b.readBigUInt64LE(at(8)), 5_000_000_000n, 'size @8');
  t.equal(b.readBigUInt64LE(at(16)), 9_765_625n, 'blocks @16');
  t.equal(b.readBigInt64LE(at(24)), 1_700_000_001n, 'atime @24');
  t.equal(b.readBigInt64LE(at(32)), 1_700_000_002n, 'mtime @32');
  t.equal(b.readBigInt64LE(at(40)), -5n, 'ctime @40 (before 1970)');
  t.same([b.readUInt32LE(at(48)), b.readUInt32LE(at(52)), b.readUInt32LE(at(56))], [11, 22, 33], 'nsecs @48');
  t.equal(b.readUInt32LE(at(60)), 0o100644, 'mode @60');
  t.equal(b.readUInt32LE(at(64)), 3, 'nlink @64');
  t.same([b.readUInt32LE(at(68)), b.readUInt32LE(at(72))], [1000, 1001], 'uid, gid @68');
  t.equal(b.readUInt32LE(at(76)), (8 << 8) | 1, 'rdev @76');
  t.equal(b.readUInt32LE(at(80)), 4096, 'blksize @80');
  t.equal(b.readUInt32LE(at(84)), 0, 'flags @84');
  t.equal(b[at(88)], 0xee, 'nothing written past 88 bytes');
  t.equal(b[3], 0xee, 'nor before');
});

t.test('fuse_entry_out and fuse_attr_out: timeouts split into seconds and nanoseconds', async (t) => {
  const b = Buffer.alloc(128);
  encodeEntry(b, 0, { ino: 7, generation: 2, attr, attrTimeout: 0.25 }, 1.5, 9);
  t.equal(b.readBigUInt64LE(0), 7n, 'nodeid');
  t.equal(b.readBigUInt64LE(8), 2n, 'generation');
  t.equal(b.readBigUInt64LE(16), 1n, 'entry_valid (session default 1.5 s)');
  t.equal(b.readUInt32LE(32), 500_000_000, 'entry_valid_nsec');
  t.equal(b.readBigUInt64LE(24), 0n, 'attr_valid (entry override 0.25 s)');
  t.equal(b.readUInt32LE(36), 250_000_000, 'attr_valid_nsec');
  t.equal(b.readBigUInt64LE(40), 0x1_0000_0002n, 'attr at 40');
  const neg = Buffer.alloc(128, 0xff);
  encodeEntry(neg, 0, { ino: 0, attr: undefined as unknown as Attr, entryTimeout: 3 }, 1, 1);
  t.equal(neg.readBigUInt64LE(0), 0n, 'a negative entry has node id 0');
  t.ok(
    neg.subarray(40).every((x) => x === 0),
    'and zero attributes',
  );
  const out = Buffer.alloc(104);
  encodeAttrOut(out, 0, attr, 2);
  t.equal(out.readBigUInt64LE(0), 2n, 'attr_valid');
  t.equal(out.readBigUInt64LE(16), 0x1_0000_0002n, 'attr at 16');
});

t.test('fuse_statx_out: basic stats and btime, rdev split', async (t) => {
  const b = Buffer.alloc(P.STATX_OUT_SIZE);
  encodeStatxOut(b, 0, attr, 1);
  const s = 32;
  t.equal(b.readUInt32LE(s), P.STATX_BASIC_STATS | P.STATX_BTIME, 'mask: the kernel demands all basic stats');
  t.equal(b.readUInt32LE(s + 16), 3, 'nlink');
  t.equal(b.readUInt16LE(s + 28), 0o100644, 'mode');
  t.equal(b.readBigUInt64LE(s + 40), 5_000_000_000n, 'size');
  t.equal(b.readBigInt64LE(s + 80), 1_600_000_000n, 'btime');
  t.equal(b.readUInt32LE(s + 88), 44, 'btime nsec');
  t.equal(b.readBigInt64LE(s + 112), 1_700_000_002n, 'mtime');
  t.same([b.readUInt32LE(s + 128), b.readUInt32LE(s + 132)], [8, 1], 'rdev major, minor');
});

t.test('dirents are padded to 8 bytes and stop when full', async (t) => {
  const list = new DirectoryListing(80, false, 1, 1);
  t.ok(list.add('a', 1, { ino: 5, attr }), 'first entry: 24 + 1 -> 32 bytes');
  t.equal(list.length, 32);
  t.ok(list.add('12345678', 2, { ino: 6, attr: { ...attr, mode: 0o040755 } }), '24 + 8 -> 32 bytes exactly');
  t.equal(list.length, 64);
  t.notOk(list.add('b', 3, { ino: 7, attr }), 'the third does not fit in 80');
  t.equal(list.length, 64, 'and was not written');
  const b = list.buf;
  t.equal(b.readBigUInt64LE(0), 5n, 'ino');
  t.equal(b.readBigUInt64LE(8), 1n, 'off: where the next entry starts');
  t.equal(b.readUInt32LE(16), 1, 'namelen');
  t.equal(b.readUInt32LE(20), 8, 'type DT_REG');
  t.equal(b.toString('utf8', 24, 25), 'a');
  t.ok(
    b.subarray(25, 32).every((x) => x === 0),
    'zero padding',
  );
  t.equal(b.readUInt32LE(32 + 20), 4, 'DT_DIR');
  t.same(list.looked, [], 'plain READDIR counts no lookups');
});

t.test('direntplus: entry_out before each dirent; dots count no lookup', async (t) => {
  const list = new DirectoryListing(4096, true, 1, 1);
  list.add('.', 1, { ino: 1, attr });
  list.add('..', 2, { ino: 1, attr });
  list.add('file', 3, { ino: 9, attr });
  t.equal(list.length, 3 * 160, '152 + name, padded: 160 each');
  t.equal(list.buf.readBigUInt64LE(0), 0n, '. carries no node id');
  t.equal(list.buf.readBigUInt64LE(320), 9n, 'file entry_out nodeid');
  t.equal(list.buf.readBigUInt64LE(320 + 40), 0x1_0000_0002n, 'its attr');
  t.equal(list.buf.readBigUInt64LE(320 + 128), 9n, 'its dirent ino');
  t.equal(list.buf.toString('utf8', 320 + 152, 320 + 156), 'file');
  t.same(list.looked, [9], 'only the file is a kernel reference');
});

t.test('setattr: only the valid fields, UTIME_NOW as now', async (t) => {
  const b = Buffer.alloc(88);
  b.writeUInt32LE(P.SetattrValid.MODE | P.SetattrValid.ATIME | P.SetattrValid.ATIME_NOW | P.SetattrValid.MTIME, 0);
  writeU64(b, 123, 16); // size: not valid, must be ignored
  writeU64(b, 1_000_000_000, 40);
  b.writeUInt32LE(999_999_999, 60);
  b.writeUInt32LE(0o100600, 68);
  t.same(decodeSetattr(b, 0), {
    valid: b.readUInt32LE(0),
    mode: 0o100600,
    atime: 'now',
    mtime: { sec: 1_000_000_000, nsec: 999_999_999 },
  });
  b.writeUInt32LE(P.SetattrValid.SIZE | P.SetattrValid.UID | P.SetattrValid.FH, 0);
  writeU64(b, 77, 8);
  b.writeUInt32LE(1234, 76);
  t.same(decodeSetattr(b, 0), { valid: b.readUInt32LE(0), fh: 77, size: 123, uid: 1234 });
});

t.test('errors map to errno', async (t) => {
  t.equal(errnoOf(fuseError('ENOENT')), Errno.ENOENT);
  t.equal(errnoOf(new FuseErrno(Errno.EXDEV)), Errno.EXDEV);
  t.equal(errnoOf(Object.assign(new Error('x'), { code: 'EACCES' })), Errno.EACCES, "Node's system errors");
  t.equal(errnoOf(new Error('bug')), undefined, 'anything else is not an errno (EIO + log)');
});

t.test('lookup counts: forget reports the last reference; the root is never counted', async (t) => {
  const c = new LookupCounts();
  c.add(5);
  c.add(5);
  c.add(P.ROOT_ID);
  t.equal(c.count(5), 2);
  t.notOk(c.forget(5, 1));
  t.ok(c.forget(5, 1), 'the last one');
  t.notOk(c.forget(5, 1), 'unknown inodes are ignored');
  t.notOk(c.forget(P.ROOT_ID, 1));
  t.equal(c.size, 0);
});
