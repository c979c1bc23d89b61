// Server settings: from the configuration file, the environment (ROUNDGATE_<FLAG>) and the command
// line, in that order of weight, validated with messages that name the bad setting and its source.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { z } from 'zod'
import { ALERT_EVENTS } from '../plugins/alerts/index.js'
import { GROUP_NAME, parsePartialConfig } from '../plugins/scheduler/index.js'

const port = z.number().int().min(0).max(65535)

/** One webhook of the `alerts` setting (PROTOCOL section 9). */
const alertSchema = z.object({
  url: z.string().max(2048).refine((u) => {
    try {
      const p = new URL(u).protocol
      return p === 'http:' || p === 'https:'
    } catch {
      return false
    }
  }, 'must be an http:// or https:// URL'),
  events: z.array(z.enum(ALERT_EVENTS, { errorMap: () => ({ message: `must be one of ${ALERT_EVENTS.join(', ')}` }) }))
    .min(1, `must name at least one event of ${ALERT_EVENTS.join(', ')}`),
  groups: z.string().regex(/^[A-Za-z0-9_.*?-]{1,64}$/, 'must be a group name glob (A-Z a-z 0-9 _ . - with * and ?)').optional(),
  secret: z.string().min(1, 'must not be empty (leave it out to send unsigned)').max(1024).optional()
}).strict()

const settingsSchema = z.object({
  host: z.string().min(1),
  mqttPort: port,
  httpPort: port,
  wsPort: port,
  tlsPort: port.nullable(),
  tlsCert: z.string().min(1).nullable(),
  tlsKey: z.string().min(1).nullable(),
  redis: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').nullable(),
  autoCreateGroups: z.boolean(),
  topicPrefix: z.string().regex(/^[^#+/\s][^#+\s]*$/, 'must be topic levels without wildcards, not starting with /')
    .refine((s) => !s.endsWith('/'), 'must not end with /'),
  dataDir: z.string().min(1).nullable(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  historyLimit: z.number().int().min(1000).max(100000),
  maxGroups: z.number().int().min(1).max(1000000),
  maxTerminalsPerGroup: z.number().int().min(1).max(1000000),
  /** largest scheduler message (hb/ready/done/leave/ctl payload) accepted over MQTT */
  maxMessageBytes: z.number().int().min(1024).max(16 * 1024 * 1024),
  /** largest MQTT packet of any kind; a bigger one closes the connection */
  maxPacketBytes: z.number().int().min(1024).max(256 * 1024 * 1024),
  sweepMs: z.number().int().min(50).max(1000),
  /** jobs one group may queue (PROTOCOL section 10); more are refused `unavailable` */
  maxQueuedJobs: z.number().int().min(1).max(1000000),
  /** webhooks (PROTOCOL section 9) */
  alerts: z.array(alertSchema).max(100),
  groupDefaults: z.record(z.unknown()),
  groups: z.record(z.record(z.unknown()))
}).strict()

export type Settings = z.infer<typeof settingsSchema>

export const DEFAULT_SETTINGS: Settings = {
  host: '127.0.0.1',
  mqttPort: 1883,
  httpPort: 8080,
  wsPort: 8083,
  tlsPort: null,
  tlsCert: null,
  tlsKey: null,
  redis: null,
  autoCreateGroups: true,
  topicPrefix: 'rg',
  dataDir: 'data',
  logLevel: 'info',
  historyLimit: 1000,
  maxGroups: 10000,
  maxTerminalsPerGroup: 100000,
  maxMessageBytes: 64 * 1024,
  maxPacketBytes: 1024 * 1024,
  sweepMs: 500,
  maxQueuedJobs: 10000,
  alerts: [],
  groupDefaults: {},
  groups: {}
}

type Kind = 'string' | 'int' | 'bool' | 'nullableString'

/** Every command-line flag, its setting and how its text is read. ROUNDGATE_<FLAG> mirrors each. */
const FLAGS: Record<string, { key: keyof Settings, kind: Kind, help: string }> = {
  host: { key: 'host', kind: 'string', help: 'address every listener binds (default 127.0.0.1)' },
  'mqtt-port': { key: 'mqttPort', kind: 'int', help: 'MQTT over TCP (default 1883; 0 turns it off)' },
  'http-port': { key: 'httpPort', kind: 'int', help: 'HTTP gateway (default 8080; 0 turns it off)' },
  'ws-port': { key: 'wsPort', kind: 'int', help: 'MQTT over WebSocket (default 8083; 0 turns it off)' },
  'tls-port': { key: 'tlsPort', kind: 'int', help: 'MQTT over TLS (default 8883 when --tls-cert/--tls-key are given)' },
  'tls-cert': { key: 'tlsCert', kind: 'nullableString', help: 'PEM certificate chain for MQTT over TLS' },
  'tls-key': { key: 'tlsKey', kind: 'nullableString', help: 'PEM private key for MQTT over TLS' },
  redis: { key: 'redis', kind: 'nullableString', help: 'redis://host:port[/db]: cluster mode on a shared Redis' },
  'auto-create-groups': { key: 'autoCreateGroups', kind: 'bool', help: 'create unknown groups on first use (default on)' },
  'topic-prefix': { key: 'topicPrefix', kind: 'string', help: 'first topic level(s) of every roundgate topic (default rg)' },
  'data-dir': { key: 'dataDir', kind: 'nullableString', help: 'where the in-memory store keeps its state file (default ./data; "" for none)' },
  'log-level': { key: 'logLevel', kind: 'string', help: 'fatal, error, warn, info (default), debug, trace, silent' }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function flagHelp (): string {
  const rows = Object.entries(FLAGS).map(([f, d]) => `  --${f.padEnd(20)} ${d.help}`)
  return [...rows, `  --${'no-auto-create-groups'.padEnd(20)} refuse unknown groups`, `  --${'config FILE'.padEnd(20)} JSON configuration file`].join('\n')
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

/** Group configurations (PROTOCOL section 2) are checked where they are read, so errors name the file. */
function checkGroupConfigs (source: string, data: { groupDefaults?: Record<string, unknown>, groups?: Record<string, Record<string, unknown>> }): void {
  const check = (where: string, cfg: unknown): void => {
    try {
      parsePartialConfig(cfg)
    } catch (err) {
      throw new ConfigError(`${source}: ${where}: ${(err as Error).message}`)
    }
  }
  if (data.groupDefaults !== undefined) check('groupDefaults', data.groupDefaults)
  for (const [name, cfg] of Object.entries(data.groups ?? {})) {
    if (!GROUP_NAME.test(name)) throw new ConfigError(`${source}: groups: "${name}" is not a valid group name (1-64 characters of A-Z a-z 0-9 _ . -)`)
    check(`groups.${name}`, cfg)
  }
}

/**
 * Settings from argv (without the command word), the environment and the file named by
 * --config / ROUNDGATE_CONFIG. Throws ConfigError with a message fit for the operator.
 */
export function loadSettings (argv: string[], env: NodeJS.ProcessEnv = process.env): Settings {
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
  const values = parsed.values as Record<string, string | boolean | undefined>
  for (const token of parsed.tokens) { // the last of --flag / --no-flag wins
    if (token.kind !== 'option') continue
    const plain = token.name.replace(/^no-/, '')
    if (FLAGS[plain]?.kind === 'bool') values[plain] = plain === token.name
  }

  // Each layer: where it comes from, its values, and what the operator called each setting there.
  const layers: Array<{ source: string, values: Record<string, unknown>, names: Record<string, string> }> = []
  const file = (values.config as string | undefined) ?? env.ROUNDGATE_CONFIG
  if (file !== undefined && file !== '') layers.push({ source: `configuration file ${file}`, values: readFile(file), names: {} })

  const fromEnv: Record<string, unknown> = {}
  const envNames: Record<string, string> = {}
  for (const [flag, d] of Object.entries(FLAGS)) {
    const name = `ROUNDGATE_${flag.toUpperCase().replace(/-/g, '_')}`
    const text = env[name]
    if (text !== undefined) {
      fromEnv[d.key] = convert(flag, d.kind, text, `environment ${name}`)
      envNames[d.key] = `${name} (${d.key})`
    }
    const negated = `ROUNDGATE_NO_${name.slice('ROUNDGATE_'.length)}`
    if (d.kind === 'bool' && env[negated] !== undefined) {
      const v = !(convert(`no-${flag}`, d.kind, env[negated], `environment ${negated}`) as boolean)
      if (text !== undefined && fromEnv[d.key] !== v) throw new ConfigError(`environment: ${name} and ${negated} disagree`)
      fromEnv[d.key] = v
      envNames[d.key] = `${negated} (${d.key})`
    }
  }
  layers.push({ source: 'environment', values: fromEnv, names: envNames })

  const fromFlags: Record<string, unknown> = {}
  const flagNames: Record<string, string> = {}
  for (const [flag, d] of Object.entries(FLAGS)) {
    const v = values[flag]
    if (v === undefined) continue
    fromFlags[d.key] = typeof v === 'boolean' ? v : convert(flag, d.kind, v, 'command line')
    flagNames[d.key] = `--${flag} (${d.key})`
  }
  layers.push({ source: 'command line', values: fromFlags, names: flagNames })

  let merged: Record<string, unknown> = { ...DEFAULT_SETTINGS }
  const origin: Partial<Record<keyof Settings, string>> = {}
  for (const { source, values: layer, names } of layers) {
    const res = settingsSchema.partial().safeParse(layer)
    if (!res.success) {
      const where = (path: Array<string | number>): string => [names[String(path[0])] ?? path[0], ...path.slice(1)].join('.')
      const msg = res.error.issues.map((i) => i.code === 'unrecognized_keys'
        ? (i.path.length === 0 ? `unknown setting(s) ${i.keys.join(', ')}` : `${where(i.path)}: unknown key(s) ${i.keys.join(', ')}`)
        : `${where(i.path)}: ${i.message}`).join('; ')
      throw new ConfigError(`${source}: ${msg}`)
    }
    checkGroupConfigs(source, res.data)
    merged = { ...merged, ...res.data }
    for (const key of Object.keys(res.data) as Array<keyof Settings>) origin[key] = source
  }
  const settings = settingsSchema.parse(merged)
  if ((settings.tlsCert === null) !== (settings.tlsKey === null)) {
    const [given, missing] = settings.tlsCert !== null ? ['tls-cert', 'tls-key'] : ['tls-key', 'tls-cert']
    const from = origin[settings.tlsCert !== null ? 'tlsCert' : 'tlsKey'] ?? 'defaults'
    throw new ConfigError(`${from}: --${given} is given without --${missing}: MQTT over TLS needs both`)
  }
  if (settings.tlsCert === null && settings.tlsPort !== null && settings.tlsPort !== 0) {
    throw new ConfigError(`${origin.tlsPort ?? 'defaults'}: --tls-port needs --tls-cert and --tls-key`)
  }
  return settings
}

/** The TLS port in force: 8883 by default when certificates are given, off otherwise. */
export function tlsPortOf (s: Settings): number {
  if (s.tlsCert === null) return 0
  return s.tlsPort ?? 8883
}
