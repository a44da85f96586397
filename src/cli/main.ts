// The `vxnet` command line. Each subcommand lives in its own module under src/cli/.
import { VxError } from '../errors.js';
import { packageVersion } from '../paths.js';

const USAGE = `Usage: vxnet COMMAND [OPTIONS]

Commands:
  version        print the version

Run 'vxnet COMMAND --help' for more information on a command.`;

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    console.log(packageVersion());
    return 0;
  }
  throw new VxError('ERR_UNKNOWN_COMMAND', `unknown command "${cmd}"\n\n${USAGE}`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof VxError) console.error(`vxnet: ${err.code}: ${err.message}`);
    else console.error('vxnet:', err);
    process.exitCode = 1;
  },
);
