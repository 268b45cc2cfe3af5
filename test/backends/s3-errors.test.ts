import t from 'tap';
import { mapS3Error } from '../../src/backends/s3-errors.js';
import { TimeoutError } from '../../src/core/errors.js';

// The SDK's failures as it shapes them: service exceptions carry the S3 code as name and the HTTP status.
const service = (name: string, status: number, message = name) =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
const context = { where: 'backend "s3": cannot put s3://b/k', bucket: 'b' };

t.test('S3 failures map to the LilioError family', async (t) => {
  const cases: Array<[unknown, string, RegExp]> = [
    [service('SlowDown', 503, 'Please reduce your request rate.'), 'UNAVAILABLE', /SlowDown \(HTTP 503\)/],
    [service('InternalError', 500), 'UNAVAILABLE', /InternalError \(HTTP 500\)/],
    [service('AccessDenied', 403, 'Access Denied'), 'PERMISSION', /AccessDenied \(HTTP 403\): Access Denied/],
    [service('ExpiredToken', 400), 'PERMISSION', /ExpiredToken/],
    [service('XMinioStorageFull', 507), 'NO_SPACE', /XMinioStorageFull/],
    [service('NoSuchBucket', 404), 'UNAVAILABLE', /bucket "b" does not exist/],
    [service('RequestTimeout', 400), 'TIMEOUT', /RequestTimeout/],
    [
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      'UNAVAILABLE',
      /socket hang up \(ECONNRESET\)/,
    ],
    [Object.assign(new Error('timed out'), { name: 'TimeoutError' }), 'TIMEOUT', /timed out/],
    [
      Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      'PERMISSION',
      /no AWS credentials \(set accessKeyId and secretAccessKey, or the AWS environment\)/,
    ],
    ['a string', 'UNAVAILABLE', /a string/],
  ];
  for (const [err, code, message] of cases) {
    const mapped = mapS3Error(err, context);
    t.match(mapped, { code, message }, `${(err as Error).name ?? err} -> ${code}`);
    t.match(mapped.message, /^backend "s3": cannot put s3:\/\/b\/k/);
  }
});

t.test('an aborted call reports the abort, not what the SDK made of it', async (t) => {
  const controller = new AbortController();
  controller.abort(new Error('no longer needed'));
  t.match(mapS3Error(service('InternalError', 500), { ...context, signal: controller.signal }), {
    code: 'TIMEOUT',
    message: /aborted \(no longer needed\)/,
  });
  const deadline = new AbortController();
  const reason = new TimeoutError('deadline passed');
  deadline.abort(reason);
  t.equal(mapS3Error(new Error('x'), { ...context, signal: deadline.signal }), reason, 'a LilioError reason as is');
});
