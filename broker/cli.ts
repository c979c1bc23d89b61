// `roundgate <command>`: the CLI, with commander. Each command lives in broker/commands/<name>.ts
// and exports register(program); adding one is a line in COMMANDS. The start flags come from the
// FLAGS table of broker/config.ts.
import { Command, CommanderError } from 'commander'
import * as checkConfig from './commands/check-config.js'
import * as passwd from './commands/passwd.js'
import * as start from './commands/start.js'
import * as status from './commands/status.js'
import * as token from './commands/token.js'
import * as versionCommand from './commands/version.js'
import { flagHelp } from './config.js'
import { version } from './version.js'

/** The commands, in the order `roundgate --help` lists them. */
const COMMANDS: Array<{ register: (program: Command) => void }> = [start, checkConfig, status, passwd, token, versionCommand]

export function buildProgram (): Command {
  const program = new Command('roundgate')
    .description('a self-hosted MQTT broker with a round scheduler built in')
    .version(version(), '-V, --version', 'print the version number alone')
    .showHelpAfterError('(roundgate <command> --help for usage)')
    .configureOutput({ outputError: (text, write) => write(`roundgate: ${text}`) })
    .addHelpText('after', `\nflags of start (each also as ROUNDGATE_<FLAG>, e.g. ROUNDGATE_MQTT_PORT=1884):\n${flagHelp()}`)
  for (const c of COMMANDS) c.register(program)
  // errors and --help come back to main() as CommanderError instead of ending the process
  program.exitOverride()
  for (const c of program.commands) c.exitOverride()
  return program
}

/** Run the CLI; resolves with the exit status (2 for a usage error, as before commander). */
export async function main (argv: string[]): Promise<number> {
  process.exitCode = undefined
  const program = buildProgram()
  if (argv.length === 0) {
    process.stdout.write(program.helpInformation())
    return 2
  }
  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    throw err
  }
  const code = process.exitCode
  return typeof code === 'number' ? code : 0
}
