import { OWNER } from './buckets.js';
import type { S3Context } from './context.js';
import { S3Error } from './errors.js';
import { childrenNamed, childText, el, parseXml, type XmlNode, XmlSyntaxError } from './xml.js';

/**
 * Multipart upload, the S3 side. The engine's upload store (create, part,
 * list, complete, abort, gc of abandoned uploads) is being built separately;
 * until it is wired here every operation answers NotImplemented, so clients
 * fall back or fail clearly (aws s3 cp with a high multipart_threshold,
 * s3cmd --disable-multipart). The request and response shapes are ready:
 * wiring is replacing each `notYet` with a call into src/engine/uploads*.ts.
 *
 * Error codes the engine raises map as: NoSuchUpload 404, InvalidPart 400,
 * InvalidPartOrder 400, EntityTooSmall 400 (all in errors.ts).
 */

function notYet(operation: string): never {
  throw new S3Error(
    'NotImplemented',
    `${operation} is not implemented yet: upload objects with a single PUT (up to 5 GiB)`,
  );
}

export async function createMultipartUpload(_ctx: S3Context): Promise<void> {
  notYet('CreateMultipartUpload');
}

export async function uploadPart(_ctx: S3Context): Promise<void> {
  notYet('UploadPart');
}

export async function uploadPartCopy(_ctx: S3Context): Promise<void> {
  notYet('UploadPartCopy');
}

export async function completeMultipartUpload(_ctx: S3Context): Promise<void> {
  notYet('CompleteMultipartUpload');
}

export async function abortMultipartUpload(_ctx: S3Context): Promise<void> {
  notYet('AbortMultipartUpload');
}

export async function listParts(_ctx: S3Context): Promise<void> {
  notYet('ListParts');
}

export async function listMultipartUploads(_ctx: S3Context): Promise<void> {
  notYet('ListMultipartUploads');
}

// ---- shapes, for the wiring ----

export function initiateResult(bucket: string, key: string, uploadId: string): XmlNode {
  return el('InitiateMultipartUploadResult', el('Bucket', bucket), el('Key', key), el('UploadId', uploadId));
}

export function completeResult(location: string, bucket: string, key: string, etag: string): XmlNode {
  return el(
    'CompleteMultipartUploadResult',
    el('Location', location),
    el('Bucket', bucket),
    el('Key', key),
    el('ETag', etag),
  );
}

export function copyPartResult(lastModified: string, etag: string): XmlNode {
  return el('CopyPartResult', el('LastModified', lastModified), el('ETag', etag));
}

export interface PartSummary {
  partNumber: number;
  etag: string;
  size: number;
  lastModified: string;
}

export function listPartsResult(options: {
  bucket: string;
  key: string;
  uploadId: string;
  marker: number;
  nextMarker?: number;
  maxParts: number;
  parts: PartSummary[];
}): XmlNode {
  return el(
    'ListPartsResult',
    el('Bucket', options.bucket),
    el('Key', options.key),
    el('UploadId', options.uploadId),
    OWNER,
    el('Initiator', el('ID', 'lilio'), el('DisplayName', 'lilio')),
    el('StorageClass', 'STANDARD'),
    el('PartNumberMarker', options.marker),
    options.nextMarker !== undefined ? el('NextPartNumberMarker', options.nextMarker) : undefined,
    el('MaxParts', options.maxParts),
    el('IsTruncated', options.nextMarker !== undefined),
    options.parts.map((p) =>
      el(
        'Part',
        el('PartNumber', p.partNumber),
        el('LastModified', p.lastModified),
        el('ETag', p.etag),
        el('Size', p.size),
      ),
    ),
  );
}

export interface UploadSummary {
  key: string;
  uploadId: string;
  initiated: string;
}

export function listUploadsResult(options: {
  bucket: string;
  prefix: string;
  keyMarker: string;
  uploadIdMarker: string;
  next?: { key: string; uploadId: string };
  maxUploads: number;
  uploads: UploadSummary[];
}): XmlNode {
  return el(
    'ListMultipartUploadsResult',
    el('Bucket', options.bucket),
    el('KeyMarker', options.keyMarker),
    el('UploadIdMarker', options.uploadIdMarker),
    options.next ? el('NextKeyMarker', options.next.key) : undefined,
    options.next ? el('NextUploadIdMarker', options.next.uploadId) : undefined,
    el('Prefix', options.prefix),
    el('MaxUploads', options.maxUploads),
    el('IsTruncated', options.next !== undefined),
    options.uploads.map((u) =>
      el(
        'Upload',
        el('Key', u.key),
        el('UploadId', u.uploadId),
        el('Initiator', el('ID', 'lilio'), el('DisplayName', 'lilio')),
        OWNER,
        el('StorageClass', 'STANDARD'),
        el('Initiated', u.initiated),
      ),
    ),
  );
}

/** The part list of a CompleteMultipartUpload body, in the order given (the engine checks the order). */
export function parseCompleteBody(text: string): Array<{ partNumber: number; etag: string }> {
  const malformed = () =>
    new S3Error(
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema',
    );
  let root: XmlNode;
  try {
    root = parseXml(text);
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw malformed();
    throw err;
  }
  if (root.name !== 'CompleteMultipartUpload') throw malformed();
  const parts = childrenNamed(root, 'Part').map((p) => {
    const number = Number(childText(p, 'PartNumber'));
    const etag = childText(p, 'ETag');
    if (!Number.isInteger(number) || number < 1 || number > 10_000 || etag === undefined) throw malformed();
    return { partNumber: number, etag: etag.trim() };
  });
  if (parts.length === 0 || parts.length > 10_000) throw malformed();
  return parts;
}
