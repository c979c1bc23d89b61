// `roundgate status [--url URL] [--token JWT]`: what a running broker is doing, from its HTTP API
// (GET /v1/groups and GET /v1/groups/{g}/rounds), as two tables: the groups, and recent rounds.
import type { Command } from 'commander'
import { table } from './table.js'

interface Options { url: string, token?: string, rounds: string, json?: boolean }

interface GroupState {
  group: string, phase: string, round: number, paused: boolean, need: number, bossNeed: number,
  online: number, onlineBoss: number, ready: number, readyBoss: number, participants: number, done: number, dropped: number
}
interface Summary {
  group: string, round: number, outcome: string, releasedAt: number, endedAt: number,
  participants: unknown[] | number, done: unknown[], dropped: unknown[]
}

class StatusError extends Error {}

async function fetchJson (base: string, path: string, token: string | undefined): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (token !== undefined && token !== '') headers.authorization = `Bearer ${token}`
  let res: Response
  try {
    res = await fetch(base + path, { headers, signal: AbortSignal.timeout(10000) })
  } catch (err) {
    const cause = (err as { cause?: { code?: string, message?: string } }).cause
    throw new StatusError(`cannot reach ${base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`)
  }
  const text = await res.text()
  if (res.status !== 200) {
    let why = text.slice(0, 200)
    try { why = (JSON.parse(text) as { error: { code: string, message: string } }).error.message } catch { /* not our JSON: the text itself */ }
    const hint = res.status === 401 || res.status === 403 ? ' (give a viewer token with --token or ROUNDGATE_TOKEN)' : ''
    throw new StatusError(`${base}${path} answered ${res.status}: ${why}${hint}`)
  }
  return JSON.parse(text)
}

function when (ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}

function count (v: unknown[] | number): number {
  return Array.isArray(v) ? v.length : v
}

async function status (opts: Options): Promise<number> {
  const base = opts.url.replace(/\/+$/, '')
  const limit = Number(opts.rounds)
  if (!Number.isInteger(limit) || limit < 0 || limit > 1000) {
    process.stderr.write('roundgate: --rounds must be a whole number from 0 to 1000\n')
    return 2
  }
  try {
    const groups = await fetchJson(base, '/v1/groups', opts.token) as GroupState[]
    const rounds: Summary[] = []
    if (limit > 0) {
      for (const g of groups) rounds.push(...await fetchJson(base, `/v1/groups/${encodeURIComponent(g.group)}/rounds?limit=${limit}`, opts.token) as Summary[])
    }
    rounds.sort((a, b) => b.endedAt - a.endedAt)
    if (opts.json === true) {
      process.stdout.write(`${JSON.stringify({ groups, rounds }, null, 2)}\n`)
      return 0
    }
    const out = [`roundgate at ${base}: ${groups.length} group(s)`, '']
    out.push(groups.length === 0
      ? '(no groups)'
      : table(['GROUP', 'PHASE', 'ROUND', 'PAUSED', 'NEED', 'ONLINE', 'READY', 'PARTICIPANTS', 'DONE', 'DROPPED'],
        groups.map((g) => [g.group, g.phase, g.round, g.paused ? 'yes' : 'no', `${g.need}+${g.bossNeed}`,
          `${g.online}+${g.onlineBoss}`, `${g.ready}+${g.readyBoss}`, g.participants, g.done, g.dropped])))
    if (limit > 0) {
      out.push('', `recent rounds (the last ${limit} per group, newest first)`, '')
      out.push(rounds.length === 0
        ? '(none yet)'
        : table(['GROUP', 'ROUND', 'OUTCOME', 'RELEASED', 'SECONDS', 'PARTICIPANTS', 'DONE', 'DROPPED'],
          rounds.map((r) => [r.group, r.round, r.outcome, when(r.releasedAt),
            ((r.endedAt - r.releasedAt) / 1000).toFixed(1), count(r.participants), r.done.length, r.dropped.length])))
    }
    out.push('', 'counts: smalls+bosses')
    process.stdout.write(`${out.join('\n')}\n`)
    return 0
  } catch (err) {
    if (!(err instanceof StatusError)) throw err
    process.stderr.write(`roundgate: ${err.message}\n`)
    return 1
  }
}

export function register (program: Command): void {
  const port = process.env.ROUNDGATE_HTTP_PORT ?? '8080'
  program.command('status')
    .description('groups and recent rounds of a running broker (its HTTP API), as tables')
    .option('--url <url>', 'the broker\'s HTTP gateway [ROUNDGATE_URL]', process.env.ROUNDGATE_URL ?? `http://127.0.0.1:${port}`)
    .option('--token <jwt>', 'a viewer (or admin) JWT when authentication is on [ROUNDGATE_TOKEN]')
    .option('--rounds <n>', 'recent rounds shown per group (0: none)', '5')
    .option('--json', 'print the JSON instead of tables')
    // the token's default is read here, not given to commander, so --help never prints it
    .action(async (opts: Options) => { process.exitCode = await status({ ...opts, token: opts.token ?? process.env.ROUNDGATE_TOKEN }) })
}
