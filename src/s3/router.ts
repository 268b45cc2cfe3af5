import * as buckets from './buckets.js';
import type { S3Context } from './context.js';
import { S3Error } from './errors.js';
import * as listing from './listing.js';
import * as multipart from './multipart.js';
import * as deletes from './object-delete.js';
import * as reads from './object-read.js';
import * as writes from './object-write.js';

/**
 * Which S3 operation a request is, by method, bucket/key presence, query
 * subresources and headers; and what access it needs. The operation name is
 * also the `operation` label of the S3 metrics (a fixed set).
 */

export type Access = 'read' | 'write';
export interface Operation {
  name: string;
  /** The service level (ListBuckets) needs no bucket; everything else is checked against the key's buckets. */
  scope: 'service' | 'bucket';
  access: Access;
  run(ctx: S3Context): Promise<void>;
}

/** Subresources S3 has and Lilio does not serve: NotImplemented, never a silent success. */
const UNSUPPORTED = [
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'tagging',
  'torrent',
  'versions',
  'website',
];

function op(
  name: string,
  scope: Operation['scope'],
  access: Access,
  run: (ctx: S3Context) => Promise<void>,
): Operation {
  return { name, scope, access, run };
}

function notImplemented(what: string): Operation {
  return op('NotImplemented', 'bucket', 'read', async () => {
    throw new S3Error('NotImplemented', `${what} is not supported by Lilio`);
  });
}

function methodNotAllowed(method: string): S3Error {
  return new S3Error(
    'MethodNotAllowed',
    `The specified method ${method.slice(0, 20)} is not allowed against this resource.`,
  );
}

export function resolveOperation(
  method: string,
  bucket: string | undefined,
  key: string | undefined,
  query: Map<string, string>,
  headers: NodeJS.Dict<string | string[]>,
): Operation {
  if (bucket === undefined) {
    if (method === 'GET') return op('ListBuckets', 'service', 'read', buckets.listBuckets);
    throw methodNotAllowed(method);
  }
  const unsupported = UNSUPPORTED.find((name) => query.has(name));
  if (unsupported !== undefined) return notImplemented(`the ${unsupported} subresource`);
  // Lilio keeps one version of an object: only the "null" version S3 names an unversioned one by.
  const versionId = query.get('versionId');
  if (versionId !== undefined && versionId !== 'null') return notImplemented('addressing an object version');
  if (method === 'DELETE' && key === undefined) {
    // A DELETE on a bucket with a subresource Lilio does not know must never delete the bucket itself.
    const unknown = [...query.keys()].find((name) => name !== 'x-id' && !name.startsWith('X-Amz-'));
    if (unknown !== undefined) return notImplemented(`DELETE with ?${unknown.slice(0, 40)}`);
  }
  if (key === undefined) {
    switch (method) {
      case 'GET':
        if (query.has('location')) return op('GetBucketLocation', 'bucket', 'read', buckets.getBucketLocation);
        if (query.has('versioning')) return op('GetBucketVersioning', 'bucket', 'read', buckets.getBucketVersioning);
        if (query.has('uploads')) return op('ListMultipartUploads', 'bucket', 'read', multipart.listMultipartUploads);
        if (query.get('list-type') === '2') return op('ListObjectsV2', 'bucket', 'read', listing.listObjectsV2);
        if (query.has('list-type')) throw new S3Error('InvalidArgument', 'list-type must be 2');
        return op('ListObjects', 'bucket', 'read', listing.listObjectsV1);
      case 'HEAD':
        return op('HeadBucket', 'bucket', 'read', buckets.headBucket);
      case 'PUT':
        if (query.has('versioning')) return notImplemented('bucket versioning');
        return op('CreateBucket', 'bucket', 'write', buckets.createBucket);
      case 'DELETE':
        return op('DeleteBucket', 'bucket', 'write', buckets.deleteBucket);
      case 'POST':
        if (query.has('delete')) return op('DeleteObjects', 'bucket', 'write', deletes.deleteObjects);
        throw methodNotAllowed(method);
      default:
        throw methodNotAllowed(method);
    }
  }
  const uploadId = query.has('uploadId');
  switch (method) {
    case 'GET':
      if (uploadId) return op('ListParts', 'bucket', 'read', multipart.listParts);
      return op('GetObject', 'bucket', 'read', reads.getObject);
    case 'HEAD':
      return op('HeadObject', 'bucket', 'read', reads.getObject);
    case 'PUT':
      if (uploadId || query.has('partNumber')) {
        return headers['x-amz-copy-source'] !== undefined
          ? op('UploadPartCopy', 'bucket', 'write', multipart.uploadPartCopy)
          : op('UploadPart', 'bucket', 'write', multipart.uploadPart);
      }
      if (headers['x-amz-copy-source'] !== undefined) return op('CopyObject', 'bucket', 'write', writes.copyObject);
      return op('PutObject', 'bucket', 'write', writes.putObject);
    case 'DELETE':
      if (uploadId) return op('AbortMultipartUpload', 'bucket', 'write', multipart.abortMultipartUpload);
      return op('DeleteObject', 'bucket', 'write', deletes.deleteObject);
    case 'POST':
      if (query.has('uploads')) return op('CreateMultipartUpload', 'bucket', 'write', multipart.createMultipartUpload);
      if (uploadId) return op('CompleteMultipartUpload', 'bucket', 'write', multipart.completeMultipartUpload);
      throw methodNotAllowed(method);
    default:
      throw methodNotAllowed(method);
  }
}

/** Every operation name, for metrics that are pre-declared. */
export const OPERATION_NAMES = [
  'ListBuckets',
  'GetBucketLocation',
  'GetBucketVersioning',
  'ListObjects',
  'ListObjectsV2',
  'HeadBucket',
  'CreateBucket',
  'DeleteBucket',
  'DeleteObjects',
  'GetObject',
  'HeadObject',
  'PutObject',
  'CopyObject',
  'DeleteObject',
  'CreateMultipartUpload',
  'UploadPart',
  'UploadPartCopy',
  'CompleteMultipartUpload',
  'AbortMultipartUpload',
  'ListParts',
  'ListMultipartUploads',
  'NotImplemented',
  'Unknown',
] as const;
