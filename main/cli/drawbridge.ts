#!/usr/bin/env node
/**
 * The `drawbridge` command. Each subcommand lives in its own part and is loaded only when used, through that
 * part's public entry (`defender/index.ts`, later `console/index.ts`), so the desktop app never bundles servers.
 */
import 'reflect-metadata'; // @peculiar/x509 (certificates) resolves its providers through tsyringe, which needs it first
import { COMPANION_USAGE, isCompanionCommand, runCompanionCommand } from './companion-commands.js';

const USAGE = `Usage: drawbridge <command> [options]

Commands:
  defender    run a Defender: mTLS access control in front of the Docker Engine
  console     run the Console: users, certificates, rules, Defender enrolment
  help        show this help

On a developer's machine (the companion):
${COMPANION_USAGE}
Run 'drawbridge <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (isCompanionCommand(command)) return runCompanionCommand(command, rest);
  switch (command) {
    case 'defender': {
      const { runDefender } = await import('../../defender/index.js');
      return runDefender(rest);
    }
    case 'console': {
      const { runConsole } = await import('../../console/index.js');
      return runConsole(rest);
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
