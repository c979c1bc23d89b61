// `roundgate check-config FILE`: validate a configuration file (with the ROUNDGATE_* variables in
// force, as `start` would read them) and print the effective configuration as JSON: every setting,
// and every declared group with the defaults filled in. Exit status 1 with every problem named.
import type { Command } from 'commander'
import { DEFAULT_GROUP_CONFIG, mergeConfig, parsePartialConfig, publicConfig } from '../../plugins/scheduler/index.js'
import { checkSettings } from '../config.js'
import type { Settings } from '../settings.js'

/** Names of settings whose values are secrets, whatever adds them later. */
const SECRET = /secret|password|token|passphrase/i

function redacted (settings: Settings): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(settings)) {
    if (SECRET.test(k) && typeof v === 'string') out[k] = '***'
    else if (k === 'redis' && typeof v === 'string') out[k] = v.replace(/\/\/[^@/]*@/, '//***@')
    else out[k] = v
  }
  return out
}

export function effectiveConfiguration (settings: Settings): Record<string, unknown> {
  const defaults = mergeConfig(DEFAULT_GROUP_CONFIG, parsePartialConfig(settings.groupDefaults))
  const groups: Record<string, unknown> = {}
  for (const [name, cfg] of Object.entries(settings.groups)) groups[name] = publicConfig(mergeConfig(defaults, parsePartialConfig(cfg)))
  return { ...redacted(settings), groupDefaults: publicConfig(defaults), groups }
}

export function register (program: Command): void {
  program.command('check-config')
    .argument('<file>', 'the JSON configuration file')
    .description('validate a configuration file and print the effective configuration (exit 1 naming every problem)')
    .addHelpText('after', '\nThe ROUNDGATE_* variables of this environment are applied too, as `start` would.\n' +
      'Values named like secrets are shown as ***.')
    .action((file: string) => {
      const { settings, problems } = checkSettings(file)
      if (settings === null) {
        for (const p of problems) process.stderr.write(`roundgate: ${p}\n`)
        process.stderr.write(`roundgate: ${file}: ${problems.length} problem(s)\n`)
        process.exitCode = 1
        return
      }
      process.stdout.write(`${JSON.stringify(effectiveConfiguration(settings), null, 2)}\n`)
      process.exitCode = 0
    })
}
