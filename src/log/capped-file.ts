import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface CappedFileOptions {
  /** The file is rotated once it would grow past this many bytes. */
  maxBytes: number;
  /** Rotated files kept beside it (FILE.1 newest ... FILE.N oldest); older ones are deleted. */
  keep: number;
}

export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_KEEP = 3;

/**
 * A log file that never takes more than maxBytes × (keep + 1) of disk: when a
 * line would carry it past maxBytes, FILE becomes FILE.1 (FILE.1 becomes
 * FILE.2, ...; the oldest is deleted) and a new FILE is started. Writes are
 * synchronous: log lines are few (warnings, errors, lifecycle), and the line
 * that explains a crash must be on disk before the process goes.
 *
 * Several processes appending to one file (the user gave two mounts the same
 * --log-file) each rotate on their own count; the file may then briefly pass
 * the cap, but never grows without bound.
 */
export class CappedFile {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly options: CappedFileOptions = { maxBytes: DEFAULT_LOG_MAX_BYTES, keep: DEFAULT_LOG_KEEP },
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  /** pino's destination contract: one formatted line (or several) at a time. */
  write(text: string): boolean {
    const bytes = Buffer.byteLength(text);
    if (this.size > 0 && this.size + bytes > this.options.maxBytes) this.rotate();
    try {
      writeSync(this.fd, text);
      this.size += bytes;
    } catch {
      // A full disk must not take the process down for want of a log line.
    }
    return true;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }

  private rotate(): void {
    try {
      closeSync(this.fd);
      const { keep } = this.options;
      if (keep === 0) rmSync(this.path, { force: true });
      else {
        rmSync(`${this.path}.${keep}`, { force: true });
        for (let i = keep - 1; i >= 1; i--) renameIfExists(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        renameIfExists(this.path, `${this.path}.1`);
      }
    } finally {
      this.fd = openSync(this.path, 'a', 0o640);
      this.size = fstatSync(this.fd).size;
    }
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
