import {
  ALGORITHM,
  canonicalQuery,
  canonicalRequest,
  formatAmzDate,
  normalizedPath,
  signHex,
  signingKey,
  stringToSign,
  UNSIGNED_PAYLOAD,
} from './sigv4.js';

/** Signs a URL for a GET or PUT, as the SDK's presigner does (used by tests and tools). */
export function presignUrl(options: {
  method: string;
  url: URL;
  accessKeyId: string;
  secret: string;
  region?: string;
  expiresSeconds: number;
  now?: number;
}): URL {
  const region = options.region ?? 'us-east-1';
  const amzDate = formatAmzDate(options.now ?? Date.now());
  const date = amzDate.slice(0, 8);
  const url = new URL(options.url);
  url.searchParams.set('X-Amz-Algorithm', ALGORITHM);
  url.searchParams.set('X-Amz-Credential', `${options.accessKeyId}/${date}/${region}/s3/aws4_request`);
  url.searchParams.set('X-Amz-Date', amzDate);
  url.searchParams.set('X-Amz-Expires', String(options.expiresSeconds));
  url.searchParams.set('X-Amz-SignedHeaders', 'host');
  const rawQuery = url.search.slice(1);
  const headers = new Map([['host', url.host]]);
  const request = canonicalRequest(
    options.method,
    normalizedPath(url.pathname),
    canonicalQuery(rawQuery),
    headers,
    ['host'],
    UNSIGNED_PAYLOAD,
  );
  const scope = `${date}/${region}/s3/aws4_request`;
  const signature = signHex(signingKey(options.secret, date, region), stringToSign(amzDate, scope, request));
  url.searchParams.set('X-Amz-Signature', signature);
  return url;
}
