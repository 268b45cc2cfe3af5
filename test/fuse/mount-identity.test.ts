import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { abortConnection, connectionAlive, connectionOf, mountedDevice } from '../../src/fuse/mount-identity.js';

// A mount is known by its device, read from mountinfo: the topmost mount at a path, escaped
// names, and the fusectl connection number derived from it.

const dir = mkdtempSync(join(tmpdir(), 'lilio-identity-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '36 22 0:40 / /mnt/with\\040space rw,nosuid,nodev - fuse.lilio lilio rw,user_id=0,group_id=0',
  '37 22 0:41 / /mnt/stacked rw - fuse.lilio lilio rw,user_id=0,group_id=0',
  '38 37 0:45 / /mnt/stacked rw - fuse.lilio lilio rw,user_id=0,group_id=0',
  '',
].join('\n');

t.test('the device of the mount a path shows', async (t) => {
  const info = join(dir, 'mountinfo');
  writeFileSync(info, MOUNTINFO);
  t.equal(mountedDevice('/mnt/with space', info), '0:40', 'octal escapes are decoded');
  t.equal(mountedDevice('/mnt/stacked', info), '0:45', 'the newer of two stacked mounts is the one seen');
  t.equal(mountedDevice('/mnt/none', info), undefined, 'nothing mounted');
  t.equal(mountedDevice('/mnt/stacked', join(dir, 'missing')), undefined, 'no mountinfo: unknown');
  t.equal(mountedDevice('/'), mountedDevice('/', '/proc/self/mountinfo'), 'this process reads its own');
});

t.test('the fusectl connection of a device', async (t) => {
  t.equal(connectionOf('0:40'), 40);
  t.equal(connectionOf('1:2'), (1 << 20) | 2, 'the kernel dev_t, major above minor');
  const root = join(dir, 'connections');
  mkdirSync(join(root, '40'), { recursive: true });
  t.equal(abortConnection('0:40', root), undefined, 'abort succeeds');
  t.equal(readFileSync(join(root, '40', 'abort'), 'utf8'), '1', 'by writing 1 to the connection abort file');
  t.match(abortConnection('0:41', root), /cannot write .*41\/abort/, 'a connection that is not there says so');
  t.equal(connectionAlive('0:40', root), undefined, 'unknown where fusectl is not mounted');
});
