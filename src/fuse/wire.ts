/**
 * Encoders of the reply structs that several replies share (fuse_attr,
 * fuse_entry_out, fuse_attr_out, fuse_statx), writing in place into a
 * caller's buffer: the hot paths reuse one reply buffer and allocate nothing.
 *
 * 64-bit fields travel as JS numbers: inode numbers, handles, sizes and
 * offsets chosen by us or bounded by file sizes stay below 2^53.
 */
import type { Attr, Entry } from './filesystem.js';
import { ATTR_SIZE, STATX_BASIC_STATS, STATX_BTIME } from './protocol.js';

const TWO_32 = 0x1_0000_0000;

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * TWO_32;
}

/** Signed 64-bit (offsets in lseek, lengths in notify). */
export function readI64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readInt32LE(at + 4) * TWO_32;
}

export function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value >>> 0, at);
  buf.writeUInt32LE(Math.floor(value / TWO_32) >>> 0, at + 4);
}

/** Signed 64-bit; times before 1970 and -1 lengths. */
export function writeI64(buf: Buffer, value: number, at: number): void {
  const hi = Math.floor(value / TWO_32);
  buf.writeUInt32LE((value - hi * TWO_32) >>> 0, at);
  buf.writeInt32LE(hi | 0, at + 4);
}

/** Seconds and nanoseconds of a timeout given in (fractional) seconds. */
function writeTimeout(buf: Buffer, seconds: number, secAt: number, nsecAt: number): void {
  const whole = Math.floor(seconds);
  writeU64(buf, whole, secAt);
  buf.writeUInt32LE(Math.round((seconds - whole) * 1e9) % 1e9, nsecAt);
}

/** struct fuse_attr, 88 bytes. */
export function encodeAttr(buf: Buffer, at: number, a: Attr): void {
  writeU64(buf, a.ino, at);
  writeU64(buf, a.size, at + 8);
  writeU64(buf, a.blocks, at + 16);
  writeI64(buf, a.atime, at + 24);
  writeI64(buf, a.mtime, at + 32);
  writeI64(buf, a.ctime, at + 40);
  buf.writeUInt32LE(a.atimeNs, at + 48);
  buf.writeUInt32LE(a.mtimeNs, at + 52);
  buf.writeUInt32LE(a.ctimeNs, at + 56);
  buf.writeUInt32LE(a.mode, at + 60);
  buf.writeUInt32LE(a.nlink, at + 64);
  buf.writeUInt32LE(a.uid, at + 68);
  buf.writeUInt32LE(a.gid, at + 72);
  buf.writeUInt32LE(a.rdev, at + 76);
  buf.writeUInt32LE(a.blksize, at + 80);
  buf.writeUInt32LE(0, at + 84);
}

/** struct fuse_entry_out, 128 bytes: nodeid, generation, two timeouts, then the attr. */
export function encodeEntry(buf: Buffer, at: number, e: Entry, entryTimeout: number, attrTimeout: number): void {
  writeU64(buf, e.ino, at);
  writeU64(buf, e.generation ?? 0, at + 8);
  writeTimeout(buf, e.entryTimeout ?? entryTimeout, at + 16, at + 32);
  writeTimeout(buf, e.attrTimeout ?? attrTimeout, at + 24, at + 36);
  if (e.ino === 0) buf.fill(0, at + 40, at + 40 + ATTR_SIZE);
  else encodeAttr(buf, at + 40, e.attr);
}

/** struct fuse_attr_out, 104 bytes. */
export function encodeAttrOut(buf: Buffer, at: number, a: Attr, attrTimeout: number): void {
  writeTimeout(buf, attrTimeout, at, at + 8);
  buf.writeUInt32LE(0, at + 12);
  encodeAttr(buf, at + 16, a);
}

function encodeSxTime(buf: Buffer, at: number, sec: number, nsec: number): void {
  writeI64(buf, sec, at);
  buf.writeUInt32LE(nsec, at + 8);
  buf.writeInt32LE(0, at + 12);
}

/** struct fuse_statx_out, 288 bytes (attr_valid, flags, spare, then fuse_statx). */
export function encodeStatxOut(buf: Buffer, at: number, a: Attr, attrTimeout: number): void {
  buf.fill(0, at, at + 288);
  writeTimeout(buf, attrTimeout, at, at + 8);
  const s = at + 32;
  const hasBtime = a.btime !== undefined;
  buf.writeUInt32LE(STATX_BASIC_STATS | (hasBtime ? STATX_BTIME : 0), s);
  buf.writeUInt32LE(a.blksize, s + 4);
  buf.writeUInt32LE(a.nlink, s + 16);
  buf.writeUInt32LE(a.uid, s + 20);
  buf.writeUInt32LE(a.gid, s + 24);
  buf.writeUInt16LE(a.mode & 0xffff, s + 28);
  writeU64(buf, a.ino, s + 32);
  writeU64(buf, a.size, s + 40);
  writeU64(buf, a.blocks, s + 48);
  encodeSxTime(buf, s + 64, a.atime, a.atimeNs);
  if (hasBtime) encodeSxTime(buf, s + 80, a.btime ?? 0, a.btimeNs ?? 0);
  encodeSxTime(buf, s + 96, a.ctime, a.ctimeNs);
  encodeSxTime(buf, s + 112, a.mtime, a.mtimeNs);
  // Linux's new_encode_dev split of rdev into major and minor.
  buf.writeUInt32LE((a.rdev >>> 8) & 0xfff, s + 128);
  buf.writeUInt32LE((a.rdev & 0xff) | ((a.rdev >>> 12) & 0xfff00), s + 132);
}
