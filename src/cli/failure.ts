import { CommanderError } from 'commander';
import { describeError, LilioError, UsageError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { describeSystemError, systemErrorCode } from './local-errors.js';

/**
 * Exit codes of every command: 0 success, 1 the operation failed, 2 bad
 * usage (unknown option, missing argument, an option value that does not
 * parse). A failure is one line on stderr, never a stack trace; set
 * LILIO_DEBUG=1 to get the stack of an unexpected error as well.
 *
 * A reader that goes away (`lilio meta dump | head -1`) is not a failure:
 * the command stops quietly with status 0, as the reader got what it asked for.
 */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** One line, whatever the message held (a child's log tail, a multi-line cause). */
function oneLine(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  // "invalid config (file):" followed by its problems reads as "invalid config (file): a; b".
  return lines.reduce((out, line) => (out === '' ? line : `${out}${out.endsWith(':') ? ' ' : '; '}${line}`), '');
}

/**
 * Control characters other than the line breaks oneLine joins (a key holding
 * ESC in a "does not exist" message) are shown escaped, never sent raw to a terminal.
 */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this escapes
  return text.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, (c) => {
    const code = c.charCodeAt(0);
    return c === '\t' ? '\\t' : c === '\r' ? '\\r' : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}

function say(message: string): void {
  process.stderr.write(`lilio: ${printable(oneLine(message))}\n`);
}

/** Whether a write failed because the reader of stdout went away. */
export function isBrokenPipe(err: unknown): boolean {
  return systemErrorCode(err) === 'EPIPE';
}

/** What a failure is called in one line: our words for a local system error, else its message. */
export function describeFailure(err: unknown): string {
  if (err instanceof LilioError) return err.message;
  if (systemErrorCode(err) !== undefined) return describeSystemError(err as NodeJS.ErrnoException);
  return describeError(err);
}

/**
 * Records a failure that ends a long-running process in its log file too, where an operator
 * looks later; on stderr the one line reportFailure prints is enough.
 */
export function logFailure(log: { logger: Logger; destination: string }, what: string, err: unknown): void {
  if (log.destination !== 'stderr') log.logger.error({ err }, `${what} failed: ${describeFailure(err)}`);
}

/** Prints what went wrong and returns the exit status. */
export function reportFailure(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander already printed help, the version or the usage error.
    return err.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  if (err instanceof UsageError) {
    say(err.message);
    return EXIT_USAGE;
  }
  if (err instanceof LilioError) {
    say(err.message);
    return EXIT_FAILED;
  }
  if (isBrokenPipe(err)) return 0;
  if (systemErrorCode(err) !== undefined) {
    // A local file or socket problem (a missing file to put, a port in use): the user's to fix.
    say(describeSystemError(err as NodeJS.ErrnoException));
    return EXIT_FAILED;
  }
  say(`unexpected error: ${describeError(err)}`);
  if (process.env.LILIO_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT_FAILED;
}

/**
 * stdout's reader closing emits EPIPE on the stream, outside any command's
 * promise: end quietly there too. Errors nothing awaited (a background task
 * that threw) are reported in one line like the others.
 */
export function installProcessHandlers(): void {
  process.stdout.on('error', (err) => {
    if (isBrokenPipe(err)) process.exit(0);
    process.exit(reportFailure(err));
  });
  const fatal = (err: unknown) => process.exit(reportFailure(err));
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}
