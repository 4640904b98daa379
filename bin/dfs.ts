// dfs: the one command-line entry point (commander). Each subcommand lives in its own
// module under src/cli/; this file composes them and owns the exit codes: operating
// errors print one line `dfs: <message>` and exit 1; usage errors exit 2.
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../src/daemon/config.js';
import { StartupError } from '../src/daemon/daemon.js';
import { DevError } from '../src/daemon/dev.js';
import { InspectError } from '../src/daemon/inspect.js';
import { WalkError } from '../src/daemon/ns-walk.js';
import { OpsError } from '../src/daemon/cluster-ops.js';
import { CliError } from '../src/cli/common.js';
import { registerDaemon } from '../src/cli/daemon.js';
import { registerMount } from '../src/cli/mount.js';
import { registerStatus } from '../src/cli/status.js';
import { registerNodes } from '../src/cli/nodes.js';
import { registerClients } from '../src/cli/clients.js';
import { registerEvents } from '../src/cli/events.js';
import { registerDrain } from '../src/cli/drain.js';
import { registerFsck } from '../src/cli/fsck.js';
import { registerRaft } from '../src/cli/raft.js';
import { registerCluster } from '../src/cli/cluster.js';
import { registerLayout } from '../src/cli/layout.js';
import { registerInfo } from '../src/cli/info.js';
import { registerDev } from '../src/cli/dev.js';

function fail(message: string, code = 1): never {
  process.stderr.write(`dfs: ${message}\n`);
  process.exit(code);
}

function buildProgram(): Command {
  const program = new Command();
  program.name('dfs').description('dfs: a distributed filesystem').version('0.1.0').exitOverride();
  // The order here is the order of `dfs --help`.
  for (const register of [
    registerDaemon,
    registerMount,
    registerStatus,
    registerNodes,
    registerClients,
    registerEvents,
    registerDrain,
    registerFsck,
    registerRaft,
    registerCluster,
    registerLayout,
    registerInfo,
    registerDev,
  ]) {
    register(program);
  }
  program.addOption(new Option('--no-color').hideHelp());
  return program;
}

// `dfs ... | head` closes stdout early: that is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') process.exit(0);
      process.exit(2);
    }
    if (e instanceof CliError || e instanceof ConfigError || e instanceof StartupError || e instanceof DevError || e instanceof InspectError || e instanceof WalkError || e instanceof OpsError) fail(e.message);
    fail(e instanceof Error ? (e.stack ?? e.message) : String(e));
  }
}

void main();
