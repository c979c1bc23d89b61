// `roundgate token (--secret S | --key FILE) --sub ID --role ROLE [--groups GLOB] [--ttl 1h]`:
// print a JWT a broker started with the same --jwt-secret (HS256), or with the public half of
// FILE as --jwt-public-key (RS256 for RSA, EdDSA for Ed25519), accepts. `sub` is the clientId
// the token may connect as (terminals) or the user name (viewers, admins).
import type { Command } from 'commander'
import { TokenError, isRole, privateKeyFile, secretKey, signToken } from '../../plugins/auth/index.js'

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
export function parseTtl (text: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim())
  if (m === null) throw new Error(`--ttl must be a number of seconds or like 15m, 1h, 7d, not "${text}"`)
  const s = Number(m[1]) * UNITS[m[2] === '' ? 's' : m[2]]
  if (s < 1 || s > 366 * 86400) throw new Error('--ttl must be from 1 second to 366 days')
  return s
}

export interface TokenOptions { secret?: string, key?: string, sub: string, role: string, groups?: string, ttl: string }

export async function token (o: TokenOptions): Promise<string> {
  if ((o.secret === undefined) === (o.key === undefined)) throw new Error('give --secret S or --key FILE (one of them)')
  if (!isRole(o.role)) throw new Error('--role must be terminal, viewer or admin')
  const key = o.secret !== undefined ? secretKey(o.secret) : privateKeyFile(o.key ?? '')
  return await signToken(key, { sub: o.sub, role: o.role, groups: o.groups, ttlS: parseTtl(o.ttl) })
}

export function register (program: Command): void {
  program
    .command('token')
    .description('print a JWT for a terminal, viewer or admin')
    .option('--secret <secret>', 'HS256 secret (the broker\'s --jwt-secret; 32+ characters)')
    .option('--key <file>', 'PEM private key, RSA (RS256) or Ed25519 (EdDSA); the broker takes its public half')
    .requiredOption('--sub <id>', 'the clientId (terminals) or user name the token names')
    .requiredOption('--role <role>', 'terminal, viewer or admin')
    .option('--groups <glob>', 'groups the token may use, comma-separated globs (default all)')
    .option('--ttl <time>', 'lifetime: seconds, or 15m, 1h, 7d', '1h')
    .action(async (o: TokenOptions) => {
      try {
        process.stdout.write(`${await token(o)}\n`)
      } catch (err) {
        process.stderr.write(`roundgate token: ${err instanceof TokenError ? err.message : (err as Error).message}\n`)
        process.exitCode = 2
      }
    })
}
