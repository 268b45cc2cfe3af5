import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.js';

/** Shorter secrets are refused when the file is read: a guessable token is no access control. */
export const MIN_TOKEN_LENGTH = 16;
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

/**
 * Reads a token file: one token per line; blank lines and lines starting
 * with '#' are ignored. Every token must be printable ASCII without spaces
 * (it travels in an Authorization header) and at least 16 characters long.
 */
export function readTokenFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read token file ${path}: ${code === 'ENOENT' ? 'no such file' : code}`);
  }
  const tokens: string[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!TOKEN_PATTERN.test(line)) {
      throw new ConfigError(`token file ${path}, line ${index + 1}: a token is printable ASCII without spaces`);
    }
    if (line.length < MIN_TOKEN_LENGTH) {
      throw new ConfigError(
        `token file ${path}, line ${index + 1}: a token needs at least ${MIN_TOKEN_LENGTH} characters`,
      );
    }
    tokens.push(line);
  }
  if (tokens.length === 0) throw new ConfigError(`token file ${path} holds no token`);
  return tokens;
}

/** The token a client presents (an `http` backend, the CLI with --endpoint): the file's first. */
export function readClientToken(path: string): string {
  return readTokenFile(path)[0]!;
}
