import type { IncomingHttpHeaders } from 'node:http';
import type { ObjectSummary } from '../meta/store.js';
import { S3Error } from './errors.js';
import { etagOf, lastModifiedMs } from './object-meta.js';

/**
 * Conditional requests (RFC 9110 §13.2.2, as S3 applies them): If-Match,
 * else If-Unmodified-Since, decides 412; then If-None-Match, else
 * If-Modified-Since, decides 304 on a read (412 on anything else).
 * CopyObject's x-amz-copy-source-if-* work the same on the source, except
 * that every failure is a 412.
 */

function etagList(value: string): string[] {
  return value.split(',').map((e) => e.trim().replace(/^W\//, ''));
}

function matches(value: string, record: Pick<ObjectSummary, 'etag' | 'versionId'>): boolean {
  const etag = etagOf(record);
  return etagList(value).some((e) => e === '*' || e === etag || `"${e}"` === etag);
}

function time(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  // An unparseable date is ignored, as RFC 9110 asks.
  return Number.isNaN(ms) ? undefined : ms;
}

export interface ConditionHeaders {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

function pick(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export function conditionHeaders(headers: IncomingHttpHeaders, prefix = ''): ConditionHeaders {
  return {
    ifMatch: pick(headers, `${prefix}if-match`),
    ifNoneMatch: pick(headers, `${prefix}if-none-match`),
    ifModifiedSince: pick(headers, `${prefix}if-modified-since`),
    ifUnmodifiedSince: pick(headers, `${prefix}if-unmodified-since`),
  };
}

export function hasConditions(c: ConditionHeaders): boolean {
  return Object.values(c).some((v) => v !== undefined);
}

/** Throws PreconditionFailed or NotModified (the caller turns that into a bare 304). */
export function checkConditions(c: ConditionHeaders, record: ObjectSummary, mode: 'read' | 'copy'): void {
  const modified = lastModifiedMs(record);
  if (c.ifMatch !== undefined) {
    if (!matches(c.ifMatch, record))
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  } else {
    const since = time(c.ifUnmodifiedSince);
    if (since !== undefined && modified > since) {
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    }
  }
  const failed = () =>
    mode === 'read'
      ? new S3Error('NotModified', 'Not Modified')
      : new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  if (c.ifNoneMatch !== undefined) {
    if (matches(c.ifNoneMatch, record)) throw failed();
  } else {
    const since = time(c.ifModifiedSince);
    if (since !== undefined && modified <= since) throw failed();
  }
}
