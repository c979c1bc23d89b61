// `roundgate passwd FILE USER --role terminal|viewer|admin [--clients IDS] [--groups GLOB]`: add or
// replace USER in the credentials file, with an scrypt hash of the password read from standard
// input (the first line; never from the command line, where `ps` would show it). The file is
// checked before it is rewritten (a malformed line is reported with its number) and written
// atomically with mode 0600. A running broker reads it again on SIGHUP.
import type { Command } from 'commander'
import { DEFAULT_SCRYPT, GlobList, NAME, PasswdError, hashPassword, isRole, upsertUser } from '../../plugins/auth/index.js'

async function readPassword (): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))
    size += b.length
    if (size > 4096) throw new Error('the password on standard input is longer than 4096 bytes')
    chunks.push(b)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  return text.split(/\r?\n/)[0]
}

export interface PasswdOptions { role: string, clients?: string, groups?: string, cost?: string }

export async function passwd (file: string, user: string, o: PasswdOptions): Promise<string> {
  if (!NAME.test(user)) throw new Error('USER must be 1-128 of A-Z a-z 0-9 _ . : - (never + # /)')
  if (!isRole(o.role)) throw new Error('--role must be terminal, viewer or admin')
  const clients = o.clients ?? '-'
  if (clients !== '-') new GlobList(clients) // throws on a bad list
  const groups = o.groups ?? '*'
  new GlobList(groups)
  const ln = o.cost === undefined ? DEFAULT_SCRYPT.ln : Number(o.cost)
  if (!Number.isInteger(ln) || ln < 10 || ln > 20) throw new Error('--cost must be a whole number from 10 to 20 (log2 of scrypt N)')
  const password = await readPassword()
  if (password.length < 8) throw new Error('the password (first line of standard input) must be at least 8 characters')
  const hash = await hashPassword(password, { ...DEFAULT_SCRYPT, ln })
  const outcome = await upsertUser(file, { user, role: o.role, clients, groups, hash })
  return `${outcome} ${user} (${o.role}) in ${file}`
}

export function register (program: Command): void {
  program
    .command('passwd')
    .description('add or replace a user of a credentials file; the password is read from standard input')
    .argument('<file>', 'the credentials file (created if missing)')
    .argument('<user>', 'user name: 1-128 of A-Z a-z 0-9 _ . : -')
    .requiredOption('--role <role>', 'terminal, viewer or admin')
    .option('--clients <ids>', 'clientIds the user may connect as, comma-separated globs (default: terminal: the user name; viewer: the user name and <user>-*; admin: any)')
    .option('--groups <glob>', 'groups the user may use, comma-separated globs', '*')
    .option('--cost <ln>', `scrypt cost, log2 of N (default ${DEFAULT_SCRYPT.ln})`)
    .action(async (file: string, user: string, o: PasswdOptions) => {
      try {
        process.stdout.write(`${await passwd(file, user, o)}\n`)
      } catch (err) {
        process.stderr.write(`roundgate passwd: ${err instanceof PasswdError ? err.message : (err as Error).message}\n`)
        process.exitCode = 2
      }
    })
}
