import { Command } from 'commander';
import { registerAdminCommands } from './admin.js';
import { registerBenchCommand } from './bench.js';
import { registerBucketCommands } from './bucket.js';
import { registerCompletionCommand } from './completion.js';
import { installProcessHandlers, reportFailure } from './failure.js';
import { registerGcCommand } from './gc.js';
import { invocation } from './invocation.js';
import { registerListingCommands } from './listing.js';
import { registerMetaCommands } from './meta.js';
import { registerMountCommands } from './mount.js';
import { registerNodeCommand } from './node.js';
import { registerObjectCommands } from './object.js';
import { registerRemoveCommand } from './remove.js';
import { registerS3Commands } from './s3.js';
import { registerServerCommand } from './server.js';
import { registerStatusCommand } from './status.js';
import { versionString } from './version.js';

export function buildProgram(): Command {
  const program = new Command('lilio')
    .description('Lilio: a replicated, encrypted object store you can mount as a filesystem')
    .version(versionString(), '-V, --version', 'print the version and the commit it was built from')
    .option('-c, --config <file>', 'config file (default: $LILIO_CONFIG, else the embedded default under $LILIO_HOME)')
    .option('--endpoint <url>', 'talk to a running `lilio server` at URL instead of opening the stores')
    .option('--token-file <file>', 'bearer token file (with --endpoint; $LILIO_TOKEN wins)')
    .option('--metadata <type>', "metadata store instead of the config's: local, memory or etcd")
    .option('--etcd-endpoints <list>', 'etcd endpoints, comma-separated (default: $LILIO_ETCD_ENDPOINTS)')
    .showHelpAfterError()
    .exitOverride();
  registerBucketCommands(program);
  registerObjectCommands(program);
  registerListingCommands(program);
  registerRemoveCommand(program);
  registerStatusCommand(program);
  registerMetaCommands(program);
  registerGcCommand(program);
  registerAdminCommands(program);
  registerMountCommands(program);
  registerServerCommand(program);
  registerNodeCommand(program);
  registerBenchCommand(program);
  registerCompletionCommand(program);
  registerS3Commands(program);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) {
      sub.exitOverride();
      for (const leaf of sub.commands) leaf.exitOverride();
    }
  }
  return program;
}

/** Runs one command; the exit status and the one-line error are src/cli/failure.ts's. */
export async function main(argv: string[]): Promise<number> {
  installProcessHandlers();
  invocation.argv = argv;
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    return reportFailure(err);
  }
}
