import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

/**
 * One etcd member for the benchmark, on free loopback ports, its data on
 * the benchmark's disk (so every commit pays a real fsync, as in production),
 * stopped by PID.
 */

export interface BenchEtcd {
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      server.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export function findEtcd(): string | undefined {
  for (const candidate of [process.env.ETCD_BIN, '/usr/bin/etcd', '/usr/local/bin/etcd']) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

export async function startBenchEtcd(dataDir: string, onPid: (pid: number | undefined) => void): Promise<BenchEtcd> {
  const binary = findEtcd();
  if (!binary) throw new Error("etcd not found (Debian's etcd-server; or set ETCD_BIN)");
  await mkdir(dataDir, { recursive: true });
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const child: ChildProcess = spawn(
    binary,
    [
      ...['--name', 'bench', '--data-dir', join(dataDir, 'member')],
      ...['--listen-client-urls', endpoint, '--advertise-client-urls', endpoint],
      ...['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl],
      ...['--initial-cluster', `bench=${peerUrl}`, '--logger', 'zap', '--log-level', 'error'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  onPid(child.pid);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4096);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
    onPid(undefined);
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`etcd exited at start: ${log.trim().split('\n').pop()}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) });
      if (((await res.json()) as { health?: string }).health === 'true') break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error('etcd did not become healthy in 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint, pid: child.pid!, stop };
}
