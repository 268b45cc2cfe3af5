import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, describeError } from '../core/errors.js';

/** Full Drive access: the chunk folder is shared with the account, not created by Lilio. */
export const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
/** Where Google's own libraries send token requests; a credentials file may name another (token_uri). */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/** A service-account key, as the Cloud console downloads it (only the fields we use are required). */
const serviceAccountKey = z.looseObject({
  type: z.literal('service_account'),
  client_email: z.string().min(1),
  private_key: z.string().min(1),
  private_key_id: z.string().optional(),
  token_uri: z.url({ protocol: /^https?$/ }).optional(),
});

/** An OAuth client with a user's refresh token, as `gcloud auth application-default login` writes it. */
const authorizedUser = z.looseObject({
  type: z.literal('authorized_user'),
  client_id: z.string().min(1),
  client_secret: z.string().min(1),
  refresh_token: z.string().min(1),
  token_uri: z.url({ protocol: /^https?$/ }).optional(),
});

const credentialsSchema = z.discriminatedUnion('type', [serviceAccountKey, authorizedUser]);
export type DriveCredentials = z.output<typeof credentialsSchema>;

/** Reads and checks a credentials file; every problem is a ConfigError that names the file. */
export async function loadDriveCredentials(path: string): Promise<DriveCredentials> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `cannot read Drive credentials ${path}: ${code === 'ENOENT' ? 'no such file' : describeError(err)}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`Drive credentials ${path} are not valid JSON: ${describeError(err)}`);
  }
  const parsed = credentialsSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(
      `Drive credentials ${path} are neither a service-account key ("type": "service_account") nor an ` +
        `OAuth refresh token ("type": "authorized_user"): ${problems.join('; ')}`,
    );
  }
  if (parsed.data.type === 'service_account') {
    try {
      createPrivateKey(parsed.data.private_key);
    } catch (err) {
      throw new ConfigError(`Drive credentials ${path}: private_key is not a PEM private key: ${describeError(err)}`);
    }
  }
  return parsed.data;
}

type DriveModule = typeof import('googleapis/build/src/apis/drive/index.js');
export type DriveAuthClient = InstanceType<DriveModule['auth']['JWT']> | InstanceType<DriveModule['auth']['OAuth2']>;

/** The googleapis auth client for the credentials: signed-JWT exchange or refresh-token grant. */
export function createDriveAuth(drive: DriveModule, credentials: DriveCredentials): DriveAuthClient {
  const tokenUrl = credentials.token_uri ?? GOOGLE_TOKEN_URL;
  if (credentials.type === 'authorized_user') {
    const client = new drive.auth.OAuth2({
      clientId: credentials.client_id,
      clientSecret: credentials.client_secret,
      endpoints: { oauth2TokenUrl: tokenUrl },
    });
    client.setCredentials({ refresh_token: credentials.refresh_token });
    return client;
  }
  const client = new drive.auth.JWT({
    email: credentials.client_email,
    key: credentials.private_key,
    keyId: credentials.private_key_id,
    scopes: [DRIVE_SCOPE],
  });
  if (tokenUrl !== GOOGLE_TOKEN_URL) {
    // The JWT client posts the signed assertion to Google's fixed token URL whatever the key says;
    // honour the key's token_uri (private endpoints, tests) by redirecting just that request.
    client.transporter.interceptors.request.add({
      resolved: async (request) => {
        if (String(request.url) === GOOGLE_TOKEN_URL) request.url = new URL(tokenUrl);
        return request;
      },
    });
  }
  return client;
}
