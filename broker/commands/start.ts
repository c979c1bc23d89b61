// `roundgate start [flags]`: run the broker until SIGTERM or SIGINT (SIGHUP reloads the credentials
// file and the TLS certificate). The flags come from the FLAGS
// table of broker/config.ts (each also as ROUNDGATE_<FLAG>); commander shows them in --help and
// reads them, config.ts turns them into settings.
import { type Command, Option } from 'commander'
import { ConfigError, envName, settingsFrom, type CommandLine } from '../config.js'
import { FLAGS } from '../settings.js'

export function register (program: Command): void {
  const cmd = program.command('start')
    .description('run the broker: MQTT (TCP, TLS, WebSocket) and the HTTP gateway')
    .addHelpText('after', '\nEvery flag also as an environment variable ROUNDGATE_<FLAG>, e.g. ROUNDGATE_MQTT_PORT=1884;\n' +
      'weight: configuration file < environment < command line. SIGTERM or SIGINT stop it (exit status 0);\n' +
      'SIGHUP reloads the credentials file and the TLS certificate.')
  cmd.addOption(new Option('--config <file>', 'JSON configuration file [ROUNDGATE_CONFIG]'))
  const attributes = new Map<string, string>() // commander's attribute name → flag
  for (const [flag, d] of Object.entries(FLAGS)) {
    const help = `${d.help} [${envName(flag)}]`
    const opt = d.kind === 'bool' ? new Option(`--${flag}`, help) : new Option(`--${flag} <${d.kind === 'int' ? 'n' : 'value'}>`, help)
    cmd.addOption(opt)
    if (d.kind === 'bool') cmd.addOption(new Option(`--no-${flag}`, `the opposite of --${flag}`))
    attributes.set(opt.attributeName(), flag)
  }
  cmd.action(async (opts: Record<string, string | boolean | undefined>) => {
    const cli: CommandLine = {}
    for (const [attr, v] of Object.entries(opts)) {
      const flag = attr === 'config' ? 'config' : attributes.get(attr)
      if (flag !== undefined && v !== undefined) cli[flag] = v
    }
    process.exitCode = await start(cli)
  })
}

async function start (cli: CommandLine): Promise<number> {
  let settings
  try {
    settings = settingsFrom(cli)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`roundgate: ${err.message}\n`)
      return 2
    }
    throw err
  }
  // the server and its dependencies load only for start: --help and the other commands stay quick
  const [{ createLogger }, { startServer }] = await Promise.all([import('../log.js'), import('../server.js')])
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
      running.stop().then(() => {
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
