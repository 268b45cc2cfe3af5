import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { UsageError } from '../core/errors.js';
import { addAccessKey, defaultCredentialsPath, readCredentials, removeAccessKey } from '../s3/credentials.js';
import type { GlobalOptions } from './context.js';
import { formatTime, table } from './output.js';

interface KeyFlags {
  credentials?: string;
}

/** --credentials FILE, else the config's s3.credentialsFile, else $LILIO_HOME/s3-credentials.json. */
export function credentialsPath(command: Command, flag: string | undefined): string {
  if (flag) return flag;
  const options = command.optsWithGlobals<GlobalOptions>();
  const config = loadConfig({ configPath: options.config });
  return config.s3.credentialsFile ?? defaultCredentialsPath(config.home);
}

export function registerS3Commands(program: Command): void {
  const s3 = program.command('s3').description('the S3 endpoint of `lilio server --s3-listen`');
  const keys = s3.command('keys').description('S3 access keys (a 0600 JSON file the server re-reads when it changes)');
  keys
    .command('add')
    .description('create an access key and print its secret (shown this once only)')
    .option('--bucket <name...>', 'buckets the key may reach (repeatable; default: all, "*")')
    .option('--read-only', 'the key may read and list, never write or delete')
    .option('--id <accessKeyId>', 'the access key id (default: a random LK... id)')
    .option('--credentials <file>', 'credentials file (default: config s3.credentialsFile, else $LILIO_HOME)')
    .action((flags: KeyFlags & { bucket?: string[]; readOnly?: boolean; id?: string }, command: Command) => {
      const path = credentialsPath(command, flags.credentials);
      const key = addAccessKey(path, {
        buckets: flags.bucket ?? ['*'],
        readOnly: flags.readOnly ?? false,
        accessKeyId: flags.id,
      });
      process.stdout.write(
        `access key id:     ${key.accessKeyId}\nsecret access key: ${key.secret}\n` +
          `buckets:           ${key.buckets.join(', ')}${key.readOnly ? ' (read-only)' : ''}\n`,
      );
      process.stderr.write(`lilio: the secret is not shown again; keys are in ${path}\n`);
    });
  keys
    .command('ls')
    .description('list access keys (never their secrets)')
    .option('--credentials <file>', 'credentials file')
    .action((flags: KeyFlags, command: Command) => {
      const list = readCredentials(credentialsPath(command, flags.credentials));
      const rows = [['ACCESS KEY ID', 'ACCESS', 'CREATED', 'BUCKETS']];
      for (const k of list) {
        rows.push([
          k.accessKeyId,
          k.readOnly ? 'read-only' : 'read-write',
          formatTime(k.createdAt),
          k.buckets.join(','),
        ]);
      }
      process.stdout.write(`${table(rows)}\n`);
    });
  keys
    .command('rm')
    .description('remove an access key (a running server stops accepting it within a second)')
    .argument('<accessKeyId>')
    .option('--credentials <file>', 'credentials file')
    .action((accessKeyId: string, flags: KeyFlags, command: Command) => {
      if (!accessKeyId) throw new UsageError('which access key?');
      removeAccessKey(credentialsPath(command, flags.credentials), accessKeyId);
    });
}
