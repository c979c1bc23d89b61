// Server settings: from the configuration file, the environment (ROUNDGATE_<FLAG>) and the command
// line, in that order of weight, validated with messages that name the bad setting and its source.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { GROUP_NAME, parsePartialConfig } from '../plugins/scheduler/index.js'
import { checkRuleTopic } from '../plugins/auth/index.js'
import { DEFAULT_SETTINGS, FLAGS, settingsSchema, type Kind, type Settings } from './settings.js'

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function flagHelp (): string {
  const rows = Object.entries(FLAGS).map(([f, d]) => `  --${f.padEnd(20)} ${d.help}`)
  return [...rows, `  --${'no-auto-create-groups'.padEnd(20)} refuse unknown groups`, `  --${'config FILE'.padEnd(20)} JSON configuration file`].join('\n')
}

/** The ROUNDGATE_<FLAG> variable of a flag. */
export function envName (flag: string): string {
  return `ROUNDGATE_${flag.toUpperCase().replace(/-/g, '_')}`
}

function convert (flag: string, kind: Kind, text: string, source: string): unknown {
  switch (kind) {
    case 'string': return text
    case 'nullableString': return text === '' ? null : text
    case 'int': {
      if (!/^\d+$/.test(text.trim())) throw new ConfigError(`${source}: --${flag} must be a whole number, got "${text}"`)
      return Number(text)
    }
    case 'bool': {
      const t = text.trim().toLowerCase()
      if (['1', 'true', 'yes', 'on'].includes(t)) return true
      if (['0', 'false', 'no', 'off'].includes(t)) return false
      throw new ConfigError(`${source}: --${flag} must be true or false, got "${text}"`)
    }
  }
}

function readFile (path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`)
  }
  try {
    const v: unknown = JSON.parse(text)
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('the top level must be an object')
    return v as Record<string, unknown>
  } catch (err) {
    throw new ConfigError(`configuration file ${path} is not valid JSON: ${(err as Error).message}`)
  }
}

/** One source of settings: where it comes from, its values, and what the operator called each there. */
interface Layer { source: string, values: Record<string, unknown>, names: Record<string, string> }

/** Everything wrong with one layer, one line per setting or group (none: it is good). */
function layerProblems (layer: Layer): { data: Partial<Settings>, problems: string[] } {
  const { source, values, names } = layer
  const problems: string[] = []
  const res = settingsSchema.partial().safeParse(values)
  if (!res.success) {
    const where = (path: Array<string | number>): string => [names[String(path[0])] ?? path[0], ...path.slice(1)].join('.')
    for (const i of res.error.issues) {
      problems.push(i.code === 'unrecognized_keys'
        ? (i.path.length === 0 ? `${source}: unknown setting(s) ${i.keys.join(', ')}` : `${source}: ${where(i.path)}: unknown key(s) ${i.keys.join(', ')}`)
        : `${source}: ${where(i.path)}: ${i.message}`)
    }
  }
  // Group configurations (PROTOCOL section 2) are checked here, so errors name the file; also
  // when other settings are bad, so that check-config names every problem at once.
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
  const check = (where: string, cfg: unknown): void => {
    if (!isObject(cfg)) return // the schema above said so
    try {
      parsePartialConfig(cfg)
    } catch (err) {
      problems.push(`${source}: ${where}: ${(err as Error).message}`)
    }
  }
  check('groupDefaults', values.groupDefaults)
  if (isObject(values.groups)) {
    for (const [name, cfg] of Object.entries(values.groups)) {
      if (!GROUP_NAME.test(name)) problems.push(`${source}: groups: "${name}" is not a valid group name (1-64 characters of A-Z a-z 0-9 _ . -)`)
      else check(`groups.${name}`, cfg)
    }
  }
  if (res.success) {
    for (const [i, rule] of (res.data.acl ?? []).entries()) {
      const why = checkRuleTopic(rule.topic)
      if (why !== null) problems.push(`${source}: acl[${i}].topic "${rule.topic}": ${why}`)
    }
  }
  return { data: res.success ? res.data : {}, problems }
}

/** The command line of `start` as flag name → value (`--no-x` as x: false); `config` names the file. */
export type CommandLine = Record<string, string | boolean | undefined>

/** Read argv (without the command word) with node:util parseArgs. */
export function parseCommandLine (argv: string[]): CommandLine {
  // `--no-<flag>` is declared, not left to parseArgs' allowNegative: Node 20 has that only from 20.16.
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' } }
  for (const [flag, d] of Object.entries(FLAGS)) {
    options[flag] = { type: d.kind === 'bool' ? 'boolean' : 'string' }
    if (d.kind === 'bool') options[`no-${flag}`] = { type: 'boolean' }
  }
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false, tokens: true })
  } catch (err) {
    throw new ConfigError(`command line: ${(err as Error).message}\nflags:\n${flagHelp()}`)
  }
  const values = parsed.values
  for (const token of parsed.tokens) { // the last of --flag / --no-flag wins
    if (token.kind !== 'option') continue
    const plain = token.name.replace(/^no-/, '')
    if (FLAGS[plain]?.kind === 'bool') {
      values[plain] = plain === token.name
      delete values[`no-${plain}`]
    }
  }
  return values
}

/** The layers in order of weight: file, environment, command line. Problems are collected, not thrown. */
function layersOf (cli: CommandLine, env: NodeJS.ProcessEnv, problems: string[]): Layer[] {
  const layers: Layer[] = []
  const file = (cli.config as string | undefined) ?? env.ROUNDGATE_CONFIG
  if (file !== undefined && file !== '') {
    try {
      layers.push({ source: `configuration file ${file}`, values: readFile(file), names: {} })
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  const attempt = (fn: () => void): void => {
    try { fn() } catch (err) { problems.push((err as Error).message) }
  }

  const fromEnv: Record<string, unknown> = {}
  const envNames: Record<string, string> = {}
  for (const [flag, d] of Object.entries(FLAGS)) {
    const name = envName(flag)
    const text = env[name]
    if (text !== undefined) {
      attempt(() => { fromEnv[d.key] = convert(flag, d.kind, text, `environment ${name}`) })
      envNames[d.key] = `${name} (${d.key})`
    }
    const negated = `ROUNDGATE_NO_${name.slice('ROUNDGATE_'.length)}`
    const negText = env[negated]
    if (d.kind === 'bool' && negText !== undefined) {
      attempt(() => {
        const v = !(convert(`no-${flag}`, d.kind, negText, `environment ${negated}`) as boolean)
        if (text !== undefined && fromEnv[d.key] !== v) throw new ConfigError(`environment: ${name} and ${negated} disagree`)
        fromEnv[d.key] = v
      })
      envNames[d.key] = `${negated} (${d.key})`
    }
  }
  layers.push({ source: 'environment', values: fromEnv, names: envNames })

  const fromFlags: Record<string, unknown> = {}
  const flagNames: Record<string, string> = {}
  for (const [flag, d] of Object.entries(FLAGS)) {
    const v = cli[flag]
    if (v === undefined) continue
    attempt(() => { fromFlags[d.key] = typeof v === 'boolean' ? v : convert(flag, d.kind, v, 'command line') })
    flagNames[d.key] = `--${flag} (${d.key})`
  }
  layers.push({ source: 'command line', values: fromFlags, names: flagNames })
  return layers
}

/** Merge the layers; every problem found, with the settings when there is none. */
function resolve (cli: CommandLine, env: NodeJS.ProcessEnv, stopAtFirst: boolean): { settings: Settings | null, problems: string[] } {
  const problems: string[] = []
  const stop = (): boolean => stopAtFirst && problems.length > 0
  const layers = layersOf(cli, env, problems)
  if (stop()) return { settings: null, problems }
  let merged: Record<string, unknown> = { ...DEFAULT_SETTINGS }
  const origin: Partial<Record<keyof Settings, string>> = {}
  for (const layer of layers) {
    const checked = layerProblems(layer)
    if (checked.problems.length > 0) {
      // one message per layer, as the operator wrote it there
      problems.push(stopAtFirst ? checked.problems.join('; ') : checked.problems.join('\n'))
      if (stop()) return { settings: null, problems }
      continue
    }
    merged = { ...merged, ...checked.data }
    for (const key of Object.keys(checked.data) as Array<keyof Settings>) origin[key] = layer.source
  }
  if (problems.length > 0) return { settings: null, problems: problems.flatMap((p) => p.split('\n')) }
  const settings = settingsSchema.parse(merged)
  if ((settings.tlsCert === null) !== (settings.tlsKey === null)) {
    const [given, missing] = settings.tlsCert !== null ? ['tls-cert', 'tls-key'] : ['tls-key', 'tls-cert']
    const from = origin[settings.tlsCert !== null ? 'tlsCert' : 'tlsKey'] ?? 'defaults'
    problems.push(`${from}: --${given} is given without --${missing}: MQTT over TLS needs both`)
  }
  if (settings.tlsCert === null && settings.tlsPort !== null && settings.tlsPort !== 0) {
    problems.push(`${origin.tlsPort ?? 'defaults'}: --tls-port needs --tls-cert and --tls-key`)
  }
  if (settings.tlsCert === null && settings.wssPort !== null && settings.wssPort !== 0) {
    problems.push(`${origin.wssPort ?? 'defaults'}: --wss-port needs --tls-cert and --tls-key`)
  }
  if (settings.jwtSecret !== null && settings.jwtPublicKey !== null) {
    problems.push(`${origin.jwtPublicKey ?? 'defaults'}: give --jwt-secret or --jwt-public-key, not both`)
  }
  const exposed = exposureProblem(settings)
  if (exposed !== null) problems.push(exposed)
  return { settings: problems.length > 0 ? null : settings, problems }
}

/** Settings from a parsed command line and the environment. Throws ConfigError fit for the operator. */
export function settingsFrom (cli: CommandLine, env: NodeJS.ProcessEnv = process.env): Settings {
  const { settings, problems } = resolve(cli, env, true)
  if (settings === null) throw new ConfigError(problems[0])
  return settings
}

/**
 * Settings from argv (without the command word), the environment and the file named by
 * --config / ROUNDGATE_CONFIG. Throws ConfigError with a message fit for the operator.
 */
export function loadSettings (argv: string[], env: NodeJS.ProcessEnv = process.env): Settings {
  return settingsFrom(parseCommandLine(argv), env)
}

/** `check-config`: the settings a start would use with this file and environment, or every problem. */
export function checkSettings (file: string, env: NodeJS.ProcessEnv = process.env): { settings: Settings | null, problems: string[] } {
  return resolve({ config: file }, env, false)
}

/** Authentication is on: a credentials file or a JWT key is configured. */
export function authOn (s: Settings): boolean {
  return s.passwdFile !== null || s.jwtSecret !== null || s.jwtPublicKey !== null
}

/** 127.0.0.0/8, ::1 and localhost: the operator's own machine. */
export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h)
}

/**
 * PROTOCOL section 7: a listener beyond loopback with authentication off starts only with
 * --insecure. One line, naming the way out.
 */
export function exposureProblem (s: Settings): string | null {
  if (isLoopback(s.host) || authOn(s) || s.insecure) return null
  return `refusing to listen on ${s.host} without authentication: give --passwd-file, --jwt-secret or --jwt-public-key, or --insecure to run open anyway`
}

/** The secure WebSocket port in force: 8084 by default when certificates are given, off otherwise. */
export function wssPortOf (s: Settings): number {
  if (s.tlsCert === null) return 0
  return s.wssPort ?? 8084
}

/** The TLS port in force: 8883 by default when certificates are given, off otherwise. */
export function tlsPortOf (s: Settings): number {
  if (s.tlsCert === null) return 0
  return s.tlsPort ?? 8883
}
