#!/usr/bin/env node
/**
 * The `drawbridge` command. Each subcommand lives in its own part and is loaded only when used, through that
 * part's public entry (`defender/index.ts`, later `console/index.ts`), so the desktop app never bundles servers.
 */
const USAGE = `Usage: drawbridge <command> [options]

Commands:
  defender    run a Defender: mTLS access control in front of the Docker Engine
  help        show this help

Run 'drawbridge <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'defender': {
      const { runDefender } = await import('../../defender/index.js');
      return runDefender(rest);
    }
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`drawbridge: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`drawbridge: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
