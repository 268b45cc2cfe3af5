import { createHash, timingSafeEqual } from 'node:crypto';
import { readTokenFile } from '../config/token.js';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The bearer tokens a server accepts. Tokens are compared as SHA-256
 * digests with timingSafeEqual, and every token is compared on every
 * request, so neither the length nor the position of a match leaks.
 */
export class TokenSet {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  static fromFile(path: string): TokenSet {
    return new TokenSet(readTokenFile(path));
  }

  /** Whether an Authorization header value carries one of the tokens. */
  accepts(authorization: string | undefined): boolean {
    if (authorization === undefined) return false;
    const match = /^Bearer ([\x21-\x7e]+)$/i.exec(authorization);
    const presented = digest(match?.[1] ?? '');
    let ok = false;
    for (const known of this.digests) ok = timingSafeEqual(known, presented) || ok;
    return ok && match !== null;
  }
}
