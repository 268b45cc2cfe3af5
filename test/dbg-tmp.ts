import { Vfs } from '../src/fs/vfs.js';
import { pattern, testEngine } from './fixtures/engine.js';

const MiB = 1024 * 1024;
const engine = await testEngine({ inlineThreshold: 0, gc: { graceSeconds: 0 } });
await engine.lilio.createBucket('bkt', { chunkSize: MiB });
let written = 0;
for (const store of engine.stores.values()) {
  const put = store.put.bind(store);
  store.put = (id, d, o) => {
    written += d.byteLength;
    return put(id, d, o);
  };
}
const vfs = new Vfs(engine.lilio, { readOnly: false, maxDirtyBuffers: 64, sealsInFlight: 4, maxFileSize: 2 ** 50 });
const size = 64 * MiB;
let fd = await vfs.create('/bkt/db', 0o644);
await vfs.write(fd, pattern(size, 1), size, 0);
await vfs.release(fd);
const base = written;
fd = await vfs.open('/bkt/db', 2);
const blocks = size / 4096;
const order = Array.from({ length: blocks }, (_, i) => i);
let seed = 7;
for (let i = blocks - 1; i > 0; i--) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  const j = seed % (i + 1);
  [order[i], order[j]] = [order[j]!, order[i]!];
}
const block = pattern(4096, 3);
const t0 = performance.now();
let commitMs = 0;
for (const [i, b] of order.entries()) {
  await vfs.write(fd, block, 4096, b * 4096);
  if (i % 64 === 63) {
    const c = performance.now();
    await vfs.fsync(fd);
    commitMs += performance.now() - c;
  }
}
const t1 = performance.now();
const mid = written - base;
const rec = await engine.lilio.meta.getObject('bkt', 'db');
await vfs.release(fd);
console.log(
  `MB/s ${(size / 1e6 / ((t1 - t0) / 1000)).toFixed(1)} commit ms total ${commitMs.toFixed(0)} amp-before-close ${(mid / size).toFixed(2)} after-close ${((written - base) / size).toFixed(2)} record-json ${JSON.stringify(rec).length}`,
);
await engine.lilio.close();
