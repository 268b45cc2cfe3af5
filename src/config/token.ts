import { readFileSync } from 'node:fs';
import { ConfigError, describeError } from '../core/errors.js';

/** Shorter tokens are guessable; `openssl rand -hex 32` makes a good one. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * The bearer token shared by a storage node (`lilio node --token-file`) and
 * its clients (an `http` backend's `tokenFile`): the file's content without
 * surrounding whitespace.
 */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read token file ${path}: ${describeError(err)}`);
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(
      `token file ${path} holds ${token.length} characters; at least ${MIN_TOKEN_LENGTH} are needed`,
    );
  }
  if (/\s/.test(token)) throw new ConfigError(`token file ${path}: the token may not contain whitespace`);
  return token;
}
