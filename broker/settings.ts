// The server settings: their schema (what each may hold), their defaults, and the command-line
// flag of each. Reading them from the file, the environment and the command line: broker/config.ts.
import { z } from 'zod'
import { ALERT_EVENTS } from '../plugins/alerts/index.js'
import { aclSchema } from '../plugins/auth/index.js'

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

export const settingsSchema = z.object({
  host: z.string().min(1),
  mqttPort: port,
  httpPort: port,
  wsPort: port,
  tlsPort: port.nullable(),
  wssPort: port.nullable(),
  tlsCert: z.string().min(1).nullable(),
  tlsKey: z.string().min(1).nullable(),
  redis: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').nullable(),
  /** null: on without authentication, off with it (PROTOCOL section 2) */
  autoCreateGroups: z.boolean().nullable(),
  // --- authentication (docs/security.md) ---
  passwdFile: z.string().min(1).nullable(),
  jwtSecret: z.string().min(32, 'must be at least 32 characters').nullable(),
  jwtPublicKey: z.string().min(1).nullable(),
  insecure: z.boolean(),
  acl: aclSchema,
  loginTtlS: z.number().int().min(60).max(86400),
  // --- limits (docs/security.md lists each with its default) ---
  trustedProxies: z.array(z.string().ip()).max(100),
  exemptLoopback: z.boolean(),
  maxConnections: z.number().int().min(1).max(10000000),
  maxConnectionsPerIp: z.number().int().min(1).max(10000000),
  connectTimeoutMs: z.number().int().min(1000).max(300000),
  maxTopicLevels: z.number().int().min(8).max(100),
  maxInflightInbound: z.number().int().min(1).max(65535),
  maxOfflineMessages: z.number().int().min(0).max(1000000),
  maxTerminals: z.number().int().min(1).max(100000000),
  maxMetaBytes: z.number().int().min(1024).max(16 * 1024 * 1024 * 1024),
  maxPollsPerIp: z.number().int().min(1).max(10000000),
  maxPollsPerClient: z.number().int().min(1).max(100000),
  rateClientPerS: z.number().int().min(1).max(1000000),
  rateIpPerS: z.number().int().min(1).max(100000000),
  idleGroupMs: z.number().int().min(0).max(365 * 24 * 3600 * 1000),
  topicPrefix: z.string().regex(/^[^#+/\s][^#+\s]*$/, 'must be topic levels without wildcards, not starting with /')
    .refine((s) => !s.endsWith('/'), 'must not end with /'),
  dataDir: z.string().min(1).nullable(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  historyLimit: z.number().int().min(1000).max(100000),
  /** rounds that ended longer ago are trimmed (beyond each group's newest 1000); null keeps them */
  historyMaxAgeDays: z.number().int().min(1).max(36500).nullable(),
  /** the embedded store's commits: 'normal' survives kill -9, 'full' a power cut too (docs/storage.md) */
  durability: z.enum(['normal', 'full']),
  maxGroups: z.number().int().min(1).max(1000000),
  maxTerminalsPerGroup: z.number().int().min(1).max(1000000),
  /** largest scheduler message (hb/ready/done/leave/ctl payload) accepted over MQTT */
  maxMessageBytes: z.number().int().min(1024).max(16 * 1024 * 1024),
  /** largest MQTT packet of any kind; a bigger one closes the connection */
  maxPacketBytes: z.number().int().min(1024).max(256 * 1024 * 1024),
  sweepMs: z.number().int().min(50).max(1000),
  /** seconds between two publications of the $SYS/roundgate topics; 0 turns them off */
  sysIntervalS: z.number().int().min(0).max(86400),
  /** on SIGTERM, how long one process waits for executing rounds to end (not in cluster mode) */
  stopGraceMs: z.number().int().min(0).max(3600000),
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
  wssPort: null,
  tlsCert: null,
  tlsKey: null,
  redis: null,
  autoCreateGroups: null,
  passwdFile: null,
  jwtSecret: null,
  jwtPublicKey: null,
  insecure: false,
  acl: [],
  loginTtlS: 900,
  trustedProxies: [],
  exemptLoopback: true,
  maxConnections: 100000,
  maxConnectionsPerIp: 1000,
  connectTimeoutMs: 10000,
  maxTopicLevels: 32,
  maxInflightInbound: 100,
  maxOfflineMessages: 1000,
  maxTerminals: 1000000,
  maxMetaBytes: 64 * 1024 * 1024,
  maxPollsPerIp: 1000,
  maxPollsPerClient: 16,
  rateClientPerS: 50,
  rateIpPerS: 1000,
  idleGroupMs: 3600 * 1000,
  topicPrefix: 'rg',
  dataDir: 'data',
  logLevel: 'info',
  historyLimit: 1000,
  historyMaxAgeDays: null,
  durability: 'normal',
  maxGroups: 10000,
  maxTerminalsPerGroup: 100000,
  maxMessageBytes: 64 * 1024,
  maxPacketBytes: 1024 * 1024,
  sweepMs: 500,
  sysIntervalS: 10,
  stopGraceMs: 30000,
  maxQueuedJobs: 10000,
  alerts: [],
  groupDefaults: {},
  groups: {}
}

export type Kind = 'string' | 'int' | 'bool' | 'nullableString'

export interface FlagDef { key: keyof Settings, kind: Kind, help: string }

/**
 * Every command-line flag of `start`, its setting and how its text is read; ROUNDGATE_<FLAG> mirrors
 * each. The one table of start flags: the CLI (broker/commands/start.ts) builds its options from it.
 */
export const FLAGS: Record<string, FlagDef> = {
  host: { key: 'host', kind: 'string', help: 'address every listener binds (default 127.0.0.1)' },
  'mqtt-port': { key: 'mqttPort', kind: 'int', help: 'MQTT over TCP (default 1883; 0 turns it off)' },
  'http-port': { key: 'httpPort', kind: 'int', help: 'HTTP gateway (default 8080; 0 turns it off)' },
  'ws-port': { key: 'wsPort', kind: 'int', help: 'MQTT over WebSocket (default 8083; 0 turns it off)' },
  'tls-port': { key: 'tlsPort', kind: 'int', help: 'MQTT over TLS (default 8883 when --tls-cert/--tls-key are given)' },
  'wss-port': { key: 'wssPort', kind: 'int', help: 'MQTT over secure WebSocket (default 8084 when --tls-cert/--tls-key are given)' },
  'tls-cert': { key: 'tlsCert', kind: 'nullableString', help: 'PEM certificate chain for MQTT over TLS and wss (reloaded on SIGHUP)' },
  'tls-key': { key: 'tlsKey', kind: 'nullableString', help: 'PEM private key for MQTT over TLS and wss (reloaded on SIGHUP)' },
  redis: { key: 'redis', kind: 'nullableString', help: 'redis://host:port[/db]: cluster mode on a shared Redis' },
  'auto-create-groups': { key: 'autoCreateGroups', kind: 'bool', help: 'create unknown groups on first use (default on without authentication, off with it)' },
  'passwd-file': { key: 'passwdFile', kind: 'nullableString', help: 'credentials file (roundgate passwd); turns authentication on; reloaded on SIGHUP' },
  'jwt-secret': { key: 'jwtSecret', kind: 'nullableString', help: 'HS256 secret (32+ characters) for JWTs; turns authentication on' },
  'jwt-public-key': { key: 'jwtPublicKey', kind: 'nullableString', help: 'PEM public key (RSA: RS256, Ed25519: EdDSA) for JWTs; turns authentication on' },
  insecure: { key: 'insecure', kind: 'bool', help: 'allow a non-loopback listener without authentication (warns at every start)' },
  'topic-prefix': { key: 'topicPrefix', kind: 'string', help: 'first topic level(s) of every roundgate topic (default rg)' },
  'data-dir': { key: 'dataDir', kind: 'nullableString', help: 'directory of the embedded store\'s SQLite file roundgate.db (default ./data; "" keeps everything in memory)' },
  durability: { key: 'durability', kind: 'string', help: 'embedded store commits: normal (survive kill -9; default) or full (survive a power cut too)' },
  'log-level': { key: 'logLevel', kind: 'string', help: 'fatal, error, warn, info (default), debug, trace, silent' },
  'sys-interval': { key: 'sysIntervalS', kind: 'int', help: 'seconds between $SYS/roundgate/... publications (default 10; 0 turns them off)' },
  'stop-grace-ms': { key: 'stopGraceMs', kind: 'int', help: 'on SIGTERM, wait this long for executing rounds to end (default 30000; one process only)' }
}
