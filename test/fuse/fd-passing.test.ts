import { spawn } from 'node:child_process';
import { closeSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { fdPassing } from '../../src/fuse/fd-passing.js';
import { localDir, run } from '../fixtures/mount.js';

// The addon that receives fusermount3's /dev/fuse descriptor, tested with a
// child that sends an ordinary file's descriptor the same way (SCM_RIGHTS).
// fusermount3 itself is not installed here (Debian's fuse3 would replace fuse).

const SEND_FD = `
import os, socket, sys
sock = socket.socket(fileno=3)
fd = os.open(sys.argv[1], os.O_RDONLY)
socket.send_fds(sock, [b"x"], [fd])
`;

t.test('a descriptor sent by a child over the socket pair is received and usable', async (t) => {
  const dir = localDir(t, 'lilio-fdpass-');
  const file = join(dir, 'secret');
  writeFileSync(file, 'passed over a unix socket');
  const { socketpair, recvFd } = fdPassing();
  const [ours, theirs] = socketpair();
  t.teardown(() => {
    closeSync(ours);
    closeSync(theirs);
  });
  t.throws(() => recvFd(ours), { code: 'EAGAIN' }, 'nothing sent yet: it refuses instead of blocking');
  const child = spawn('python3', ['-c', SEND_FD, file], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 0, 'the child sent it');
  const fd = recvFd(ours);
  t.teardown(() => closeSync(fd));
  t.ok(fd > 2, `a new descriptor (${fd})`);
  const buf = Buffer.alloc(64);
  const n = readSync(fd, buf, 0, 64, 0);
  t.equal(buf.toString('utf8', 0, n), 'passed over a unix socket', 'it reads the file the child opened');
  const info = await run('grep', ['flags', `/proc/${process.pid}/fdinfo/${fd}`]);
  const flags = Number.parseInt(/flags:\s+([0-7]+)/.exec(info.stdout)?.[1] ?? '0', 8);
  t.ok(flags & 0o2000000, 'close-on-exec (O_CLOEXEC), so children do not inherit it');
});
