import { type DestinationStream, type Logger, pino } from 'pino';
import { UsageError } from '../core/errors.js';
import { CappedFile, DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES } from './capped-file.js';
import { textDestination } from './text-format.js';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LogOptions {
  /** The process's role (mount, server, node): every record carries it. */
  name: string;
  level?: LogLevel;
  format?: LogFormat;
  /** Append to this file (size-capped, rotated); stderr when absent. */
  file?: string;
  maxBytes?: number;
  keep?: number;
}

export interface ProcessLog {
  logger: Logger;
  /** Where records go: the file, or "stderr". */
  destination: string;
  close(): void;
}

export function parseLogLevel(text: string, what = '--log-level'): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(text)) return text as LogLevel;
  throw new UsageError(`${what}: "${text}" is not one of ${LOG_LEVELS.join(', ')}`);
}

export function parseLogFormat(text: string, what = '--log-format'): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(text)) return text as LogFormat;
  throw new UsageError(`${what}: "${text}" is not one of ${LOG_FORMATS.join(', ')}`);
}

const PINO_OPTIONS = {
  timestamp: pino.stdTimeFunctions.isoTime,
  // Level names, not pino's numbers: what grep, Loki and a reader look for.
  formatters: { level: (label: string) => ({ level: label }) },
};

/**
 * The logger of a long-running process (mount, server, node): pino records
 * with an ISO timestamp and a level name, as JSON lines or as text lines,
 * to stderr or to a size-capped file.
 */
export function createProcessLog(options: LogOptions): ProcessLog {
  const file = options.file
    ? new CappedFile(options.file, {
        maxBytes: options.maxBytes ?? DEFAULT_LOG_MAX_BYTES,
        keep: options.keep ?? DEFAULT_LOG_KEEP,
      })
    : undefined;
  const sink: DestinationStream = file ?? pino.destination({ fd: 2, sync: true });
  const destination = (options.format ?? 'text') === 'json' ? sink : textDestination(sink);
  const logger = pino(
    { ...PINO_OPTIONS, name: options.name, level: options.level ?? 'info', base: { pid: process.pid } },
    destination,
  );
  return { logger, destination: file?.path ?? 'stderr', close: () => file?.close() };
}

/**
 * One-shot commands (put, get, gc...) and engines opened without a logger:
 * warnings and errors as the CLI prints everything, "lilio: warning: ..." on
 * stderr, without the machinery of a log.
 */
export function commandLogger(level: LogLevel = 'warn'): Logger {
  return pino(
    { ...PINO_OPTIONS, level, base: undefined },
    {
      write(json: string): void {
        const record = JSON.parse(json) as { level: string; msg?: string };
        const prefix = record.level === 'warn' ? 'warning: ' : record.level === 'error' ? 'error: ' : '';
        process.stderr.write(`lilio: ${prefix}${record.msg ?? ''}\n`);
      },
    },
  );
}

/** Discards everything (tests that want quiet). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
