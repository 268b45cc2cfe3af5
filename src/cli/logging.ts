import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config/load.js';
import { createProcessLog, type LogOptions, type ProcessLog, parseLogFormat, parseLogLevel } from '../log/logger.js';

/** --log-* flags of the long-running commands (mount, server, node). */
export interface LogFlags {
  logFile?: string;
  logLevel?: string;
  logFormat?: string;
}

export function addLogOptions(command: Command): Command {
  return command
    .option('--log-file <file>', 'append the log to FILE (rotated at 10 MiB, 3 kept) instead of stderr')
    .option('--log-level <level>', 'least severe level logged: error, warn, info (default) or debug')
    .option('--log-format <format>', 'text (one line per record: time, level, message, key=value) or json');
}

/**
 * The log settings from the flags, else the config's `logging`, else the
 * defaults. Checked before anything starts, so a bad value is bad usage.
 */
export function logOptions(name: string, flags: LogFlags, logging?: Config['logging']): LogOptions {
  const options: LogOptions = { name };
  const level = flags.logLevel ?? logging?.level;
  if (level !== undefined) options.level = parseLogLevel(level, flags.logLevel ? '--log-level' : 'logging.level');
  const format = flags.logFormat ?? logging?.format;
  if (format !== undefined)
    options.format = parseLogFormat(format, flags.logFormat ? '--log-format' : 'logging.format');
  const file = flags.logFile ?? logging?.file;
  if (file !== undefined) options.file = resolve(file);
  if (logging) {
    options.maxBytes = logging.maxSize;
    options.keep = logging.keep;
  }
  return options;
}

export function openProcessLog(name: string, flags: LogFlags, logging?: Config['logging']): ProcessLog {
  return createProcessLog(logOptions(name, flags, logging));
}

/**
 * Where a background mount logs unless told: one file per mountpoint under
 * $LILIO_HOME/logs, named after it as systemd names mount units
 * (/mnt/lilio -> mount-mnt-lilio.log), so that two mounts never share one.
 */
export function defaultMountLog(home: string, mountpoint: string): string {
  const target = resolve(mountpoint);
  let slug =
    target
      .replace(/^\/+/, '')
      .replace(/\//g, '-')
      .replace(/[^A-Za-z0-9._-]/g, '_') || 'root';
  if (slug.length > 80) slug = `${slug.slice(0, 60)}-${createHash('sha256').update(target).digest('hex').slice(0, 16)}`;
  return join(home, 'logs', `mount-${slug}.log`);
}
