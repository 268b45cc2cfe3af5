import { Command, CommanderError } from 'commander';
import { describeError, LilioError, UsageError } from '../core/errors.js';
import { registerAdminCommands } from './admin.js';
import { registerBucketCommands } from './bucket.js';
import { registerGcCommand } from './gc.js';
import { registerMetaCommands } from './meta.js';
import { registerMountCommands } from './mount.js';
import { registerNodeCommand } from './node.js';
import { registerObjectCommands } from './object.js';
import { registerServerCommand } from './server.js';
import { registerStatusCommand } from './status.js';

export function buildProgram(): Command {
  const program = new Command('lilio')
    .description('Lilio: a replicated, encrypted object store you can mount as a filesystem')
    .version('0.1.0')
    .option('-c, --config <file>', 'config file (default: $LILIO_CONFIG, else the embedded default under $LILIO_HOME)')
    .option('--endpoint <url>', 'talk to a running `lilio server` at URL instead of opening the stores')
    .option('--token-file <file>', 'bearer token file (with --endpoint; $LILIO_TOKEN wins)')
    .option('--metadata <type>', "metadata store instead of the config's: local, memory or etcd")
    .option('--etcd-endpoints <list>', 'etcd endpoints, comma-separated (default: $LILIO_ETCD_ENDPOINTS)')
    .showHelpAfterError()
    .exitOverride();
  registerBucketCommands(program);
  registerObjectCommands(program);
  registerStatusCommand(program);
  registerMetaCommands(program);
  registerGcCommand(program);
  registerAdminCommands(program);
  registerMountCommands(program);
  registerServerCommand(program);
  registerNodeCommand(program);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}

/** Exit codes: 0 success, 1 a Lilio error (one line on stderr), 2 bad usage, 70 an unexpected failure. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed help, the version or the usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`lilio: ${err.message}\n`);
      return 2;
    }
    if (err instanceof LilioError) {
      process.stderr.write(`lilio: ${err.message}\n`);
      return 1;
    }
    const code = (err as NodeJS.ErrnoException)?.code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      // A local file problem (ENOENT on the file to put, EACCES on the target): the user's to fix.
      process.stderr.write(`lilio: ${describeError(err)}\n`);
      return 1;
    }
    process.stderr.write(`lilio: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 70;
  }
}
