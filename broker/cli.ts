// `roundgate <command>`: start (the broker), passwd and token (the auth tools, with commander, in
// broker/commands/), help, version.
import { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { register as registerPasswd } from './commands/passwd.js'
import { register as registerToken } from './commands/token.js'
import { ConfigError, flagHelp, loadSettings } from './config.js'
import { createLogger } from './log.js'
import { startServer } from './server.js'

const USAGE = `usage: roundgate <command> [flags]

commands:
  start       run the broker (MQTT, MQTT over WebSocket/TLS, HTTP gateway)
  passwd      add a user to a credentials file:  roundgate passwd FILE USER --role ROLE [--clients IDS] [--groups GLOB]
  token       print a JWT:  roundgate token (--secret S | --key FILE) --sub ID --role ROLE [--groups GLOB] [--ttl 1h]
  version     print the version
  help        this text

flags of start (each also as ROUNDGATE_<FLAG>, e.g. ROUNDGATE_MQTT_PORT=1884):
${flagHelp()}
`

function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

async function start (argv: string[]): Promise<number> {
  let settings
  try {
    settings = loadSettings(argv)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`roundgate: ${err.message}\n`)
      return 2
    }
    throw err
  }
  const log = createLogger(settings.logLevel)
  let server
  try {
    server = await startServer(settings, log)
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal(err.message)
      process.stderr.write(`roundgate: ${err.message}\n`)
      return 2
    }
    // Anything else (an unreadable state file, a store that will not open): one line for the
    // operator, the stack in the log, and an exit status rather than a hang on open handles.
    log.fatal({ err }, 'cannot start')
    process.stderr.write(`roundgate: cannot start: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
  const running = server
  return await new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting at once')
        process.exit(1)
      }
      stopping = true
      log.info({ signal }, 'shutting down')
      running.close().then(() => {
        log.info('stopped')
        resolve(0)
      }, (err) => {
        log.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGHUP', () => {
      log.info({ signal: 'SIGHUP' }, 'reloading the credentials file and the TLS certificate')
      running.reload().catch((err: unknown) => log.error({ err }, 'reload failed'))
    })
  })
}

export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start': return await start(rest)
    case 'passwd': case 'token': {
      const program = new Command('roundgate').exitOverride()
      registerPasswd(program)
      registerToken(program)
      try {
        await program.parseAsync(argv, { from: 'user' })
      } catch (err) {
        // commander printed the reason (or the help it was asked for)
        const code = (err as { exitCode?: number }).exitCode
        return code === 0 ? 0 : 2
      }
      return typeof process.exitCode === 'number' ? process.exitCode : 0
    }
    case 'version': case '--version': case '-v':
      process.stdout.write(`${version()}\n`)
      return 0
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      process.stderr.write(`roundgate: unknown command "${command}"\n\n${USAGE}`)
      return 2
  }
}
