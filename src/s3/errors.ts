import { type ErrorCode, LilioError } from '../core/errors.js';
import { el, xmlDocument } from './xml.js';

/**
 * S3's error codes with their HTTP status: the ones this server answers.
 * The code is the contract with clients (SDKs retry, redirect or give up on
 * it), so each is used in exactly the sense AWS documents.
 */
const S3_STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  ConditionalRequestConflict: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InsufficientStorage: 507,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartNumber: 416,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
} as const;

export type S3ErrorCode = keyof typeof S3_STATUS;

/** A refusal in S3's terms; `headers` go on the response (Content-Range on 416, Allow on 405). */
export class S3Error extends Error {
  constructor(
    readonly code: S3ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'S3Error';
  }

  get status(): number {
    return S3_STATUS[this.code];
  }
}

/** The engine's codes in S3's terms; NOT_FOUND and EXISTS depend on what was asked, see toS3Error. */
const FROM_LILIO: Record<ErrorCode, S3ErrorCode> = {
  NOT_FOUND: 'NoSuchKey',
  EXISTS: 'BucketAlreadyOwnedByYou',
  NOT_EMPTY: 'BucketNotEmpty',
  INVALID: 'InvalidArgument',
  NAME_TOO_LONG: 'KeyTooLongError',
  // A key whose parent is a file, or a file where a directory is: S3 has no such state, Lilio's mount does.
  IS_DIR: 'InvalidArgument',
  NOT_DIR: 'InvalidArgument',
  CONFLICT: 'ConditionalRequestConflict',
  // Whether the commit landed is unknown: a retry (after a HEAD) is the client's right move, as with any 503.
  COMMIT_UNKNOWN: 'ServiceUnavailable',
  QUORUM: 'ServiceUnavailable',
  UNAVAILABLE: 'ServiceUnavailable',
  INTEGRITY: 'InternalError',
  NO_SPACE: 'InsufficientStorage',
  PERMISSION: 'AccessDenied',
  READ_ONLY: 'AccessDenied',
  CONFIG: 'InternalError',
  TIMEOUT: 'ServiceUnavailable',
  UNSUPPORTED: 'NotImplemented',
  TOO_BIG: 'EntityTooLarge',
  NO_SUCH_UPLOAD: 'NoSuchUpload',
  INVALID_PART: 'InvalidPart',
  INVALID_PART_ORDER: 'InvalidPartOrder',
  ENTITY_TOO_SMALL: 'EntityTooSmall',
};

/**
 * Any thrown value as an S3Error. Engine messages are ours and name no
 * secret, so they are passed on; anything else is an InternalError that
 * names nothing.
 */
export function toS3Error(err: unknown, target: { key?: string } = {}): S3Error {
  if (err instanceof S3Error) return err;
  if (err instanceof LilioError) {
    let code = FROM_LILIO[err.code];
    if (err.code === 'NOT_FOUND' && /^bucket /.test(err.message)) code = 'NoSuchBucket';
    else if (err.code === 'NOT_FOUND' && target.key === undefined) code = 'NoSuchBucket';
    if (err.code === 'INVALID' && /invalid bucket name/.test(err.message)) code = 'InvalidBucketName';
    return new S3Error(code, err.message);
  }
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.');
}

export interface S3ErrorTarget {
  bucket?: string;
  key?: string;
  requestId: string;
}

/** The XML error document: Code, Message, and the resource asked for. */
export function errorDocument(error: S3Error, target: S3ErrorTarget): string {
  const resource =
    target.bucket === undefined ? '/' : `/${target.bucket}${target.key === undefined ? '' : `/${target.key}`}`;
  return xmlDocument(
    el(
      'Error',
      el('Code', error.code),
      el('Message', error.message),
      target.bucket !== undefined ? el('BucketName', target.bucket) : undefined,
      target.key !== undefined ? el('Key', target.key) : undefined,
      el('Resource', resource),
      el('RequestId', target.requestId),
    ),
    false,
  );
}
