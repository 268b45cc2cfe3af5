import { chmodSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import type { UnmountMode } from '../fs/mount.js';

/**
 * The mount process's control socket, through which `lilio umount` asks it to
 * go. A signal cannot be refused; an unmount can (EBUSY while files are open
 * for writing), so the answer travels back: one JSON line each way.
 *
 *   request  {"umount": "refuse" | "force" | "lazy"}
 *   answer   {"busy": N, "files": [...]}   refused: N files are open for writing
 *            {"ok": true}                  going: the process exits when done
 */
export type UmountRequest = 'refuse' | UnmountMode;

export type UmountAnswer = { ok: true } | { busy: number; files: string[] };

const MAX_LINE = 4096;
const SHOWN_FILES = 20;

export interface ControlHandlers {
  /** Paths of the files open for writing now. */
  writing(): string[];
  /** Starts the unmount; the answer goes out before it is done. */
  unmount(mode: UnmountMode): void;
}

/** Listens on `path` (owner only). A stale socket from a killed process is replaced. */
export function serveControl(path: string, handlers: ControlHandlers): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    let line = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      line += chunk;
      const end = line.indexOf('\n');
      if (end < 0) {
        if (line.length > MAX_LINE) socket.destroy();
        return;
      }
      let mode: unknown;
      try {
        mode = (JSON.parse(line.slice(0, end)) as { umount?: unknown }).umount;
      } catch {
        mode = undefined;
      }
      if (mode !== 'refuse' && mode !== 'force' && mode !== 'lazy') {
        socket.end(`${JSON.stringify({ error: 'bad request' })}\n`);
        return;
      }
      const writing = handlers.writing();
      if (mode === 'refuse' && writing.length > 0) {
        const answer: UmountAnswer = { busy: writing.length, files: writing.slice(0, SHOWN_FILES) };
        socket.end(`${JSON.stringify(answer)}\n`);
        return;
      }
      socket.end(`${JSON.stringify({ ok: true })}\n`);
      handlers.unmount(mode === 'lazy' ? 'lazy' : 'force');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      chmodSync(path, 0o600);
      // The socket must not keep a process alive that is otherwise done.
      server.unref();
      resolve(server);
    });
  });
}

/**
 * Asks the mount process behind `path`; undefined when nothing answers there
 * (no socket: a process of an older version, or none at all).
 */
export function askControl(
  path: string,
  request: UmountRequest,
  timeoutMs = 10_000,
): Promise<UmountAnswer | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ umount: request })}\n`));
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        const answer = JSON.parse(text.trim()) as UmountAnswer & { error?: string };
        resolve('ok' in answer || 'busy' in answer ? answer : undefined);
      } catch {
        resolve(undefined);
      }
    });
  });
}
