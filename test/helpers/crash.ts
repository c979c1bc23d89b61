// The kill -9 harness of test/crash*.test.ts: real roundgate processes (`node bin/roundgate.js
// start`) driven over HTTP by a seeded driver that plays four terminals through rounds, kills a
// process with SIGKILL at a chosen instant (between two readies, right after a release, between
// two dones, right after a clean restart, with a request in flight), starts it again, and checks
// from outside — HTTP answers and the round history — what PROTOCOL promises:
//   - no round number released twice (every sighting of a round agrees on when and with whom),
//   - none skipped (the history is 1..k without a hole, the state k or k + 1),
//   - none going backwards (the round never falls below one seen before),
//   - every acknowledged ready and done still there (ready, or taken by a later round; done:
//     repeating it is a duplicate, or the round's summary lists it).
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort, sleep, waitFor } from './wait.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

export const GROUP = 'crash'
export const TERMINALS = ['t0', 't1', 't2', 't3']
/** need 2 of 4 online terminals; RESET lasts 0 ms so a done may release the next round at once */
export const GROUP_CONFIG = { need: 2, minOnlineRatio: 1, resetMs: 0, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000 }

/** mulberry32: small, seeded, good enough to pick instants. */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** One roundgate process, started again on the same ports after each kill. */
export class RoundgateProcess {
  readonly log: string[] = []
  base = ''
  private proc: ChildProcess | null = null
  private exited: Promise<number | null> = Promise.resolve(null)
  private readonly args: string[]
  private ports: { mqtt: number, http: number } | null = null

  constructor (args: string[]) {
    this.args = args
  }

  get running (): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null
  }

  async start (): Promise<void> {
    this.ports ??= { mqtt: await freePort(), http: await freePort() }
    this.base = `http://127.0.0.1:${this.ports.http}`
    const proc = spawn(process.execPath, ['bin/roundgate.js', 'start', '--host', '127.0.0.1', '--mqtt-port', String(this.ports.mqtt),
      // a clean stop here is "stop now": the round in progress must come back after the restart
      '--http-port', String(this.ports.http), '--ws-port', '0', '--log-level', 'info', '--stop-grace-ms', '0', ...this.args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = proc
    let ready = false
    const keep = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) {
        if (line === '') continue
        this.log.push(line)
        if (this.log.length > 400) this.log.splice(0, 100)
        if (line.includes('"roundgate ready"')) ready = true
      }
    }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)))
    await waitFor(() => ready || proc.exitCode !== null, 60000, 'roundgate ready')
    if (!ready) throw new Error(`roundgate exited with ${proc.exitCode}:\n${this.log.slice(-20).join('\n')}`)
  }

  /** SIGKILL: no shutdown, no last write. */
  async kill (): Promise<void> {
    if (!this.running) return
    this.proc?.kill('SIGKILL')
    await this.exited
  }

  /** SIGTERM: a clean stop; resolves with the exit status. */
  async stop (): Promise<number | null> {
    if (!this.running) return this.proc?.exitCode ?? null
    this.proc?.kill('SIGTERM')
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), 15000)
    const code = await this.exited
    clearTimeout(timer)
    return code
  }
}

export interface Answer { status: number, json: any }

export async function api (base: string, method: string, path: string, body?: unknown, ms = 10000): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ms)
  })
  const text = await res.text()
  return { status: res.status, json: text === '' ? null : JSON.parse(text) }
}

interface Sighting { releasedAt: number, participants: string }

/** What the driver was told (acknowledged) and saw, and the checks against it after each start. */
export class Ledger {
  /** round → how it was seen released */
  readonly rounds = new Map<number, Sighting>()
  maxRound = 0
  /** acknowledged readies not yet seen taken by a round: clientId → the round the answer showed */
  readonly readies = new Map<string, number>()
  /** acknowledged done reports not yet seen in a summary: `${round}/${clientId}` */
  readonly dones = new Map<string, { round: number, id: string }>()
  readonly problems: string[] = []
  /** what became of the requests in flight at a kill (nothing is promised about them) */
  readonly inFlight: string[] = []
  checks = 0

  sawRound (round: number, releasedAt: number, participants: string[], where: string): void {
    const p = [...participants].sort().join(',')
    const seen = this.rounds.get(round)
    if (seen === undefined) this.rounds.set(round, { releasedAt, participants: p })
    else if (seen.releasedAt !== releasedAt || seen.participants !== p) {
      this.problems.push(`round ${round} released twice: first at ${seen.releasedAt} to [${seen.participants}], then (${where}) at ${releasedAt} to [${p}]`)
    }
  }

  /** The group's current round as an answer showed it: never below one shown before. */
  sawNumber (round: number, where: string): void {
    if (round < this.maxRound) this.problems.push(`round went backwards: ${round} (${where}) after ${this.maxRound} was seen`)
    this.maxRound = Math.max(this.maxRound, round)
  }

  /**
   * The whole check against one live process: history, state, terminals, and the acknowledged
   * readies and dones. `where` names the moment for the messages.
   */
  async check (base: string, where: string): Promise<{ phase: string, round: number, participants: string[], ready: string[] }> {
    this.checks++
    const hist = await api(base, 'GET', `/v1/groups/${GROUP}/rounds?limit=1000`)
    const g = await api(base, 'GET', `/v1/groups/${GROUP}`)
    const terms = await api(base, 'GET', `/v1/groups/${GROUP}/terminals`)
    if (hist.status !== 200 || g.status !== 200 || terms.status !== 200) {
      this.problems.push(`${where}: reads failed (${hist.status}, ${g.status}, ${terms.status})`)
      throw new Error(this.problems[this.problems.length - 1])
    }
    const summaries = (hist.json as Array<{ round: number, releasedAt: number, participants: string[], done: string[] }>).slice().reverse()
    summaries.forEach((s, i) => {
      if (s.round !== i + 1) this.problems.push(`${where}: history is not 1..k without holes: position ${i + 1} holds round ${s.round}`)
    })
    const k = summaries.length
    const state = g.json.state as { phase: string, round: number, releasedAt: number | null }
    const participants = (terms.json as Array<{ clientId: string, participating: boolean }>).filter((x) => x.participating).map((x) => x.clientId)
    const ready = (terms.json as Array<{ clientId: string, ready: boolean }>).filter((x) => x.ready).map((x) => x.clientId)
    const expected = state.phase === 'EXECUTING' ? k + 1 : k
    if (state.round !== expected) this.problems.push(`${where}: state says round ${state.round} (${state.phase}) but the history ends at ${k}`)
    for (const s of summaries) this.sawRound(s.round, s.releasedAt, s.participants, `${where}, history`)
    if (state.phase === 'EXECUTING' && state.releasedAt !== null) this.sawRound(state.round, state.releasedAt, participants, `${where}, state`)
    this.sawNumber(state.round, where)

    // acknowledged readies: still ready, or taken by a round at or after the one their answer showed
    for (const [id, r0] of [...this.readies]) {
      const taken = summaries.some((s) => s.round >= r0 && s.participants.includes(id)) ||
        (state.phase === 'EXECUTING' && state.round >= r0 && participants.includes(id))
      if (taken) this.readies.delete(id)
      else if (!ready.includes(id)) this.problems.push(`${where}: ${id}'s ready (acknowledged at round ${r0}) is lost: not ready, in no round since`)
    }
    // acknowledged dones: in the summary of their round, or (still executing) a repeat is a duplicate
    for (const [key, d] of [...this.dones]) {
      const s = summaries.find((x) => x.round === d.round)
      if (s !== undefined) {
        if (!s.done.includes(d.id)) this.problems.push(`${where}: ${d.id}'s done for round ${d.round} was acknowledged but its summary lacks it`)
        this.dones.delete(key)
      } else if (state.phase === 'EXECUTING' && state.round === d.round) {
        const again = await api(base, 'POST', `/v1/groups/${GROUP}/done`, { clientId: d.id, round: d.round })
        if (again.status !== 200 || again.json?.duplicate !== true) {
          this.problems.push(`${where}: ${d.id}'s done for round ${d.round} was acknowledged but repeating it answers ${again.status} ${JSON.stringify(again.json)}`)
        }
      } else {
        this.problems.push(`${where}: ${d.id}'s done for round ${d.round} was acknowledged but round ${d.round} is neither executing nor in the history`)
        this.dones.delete(key)
      }
    }
    return { phase: state.phase, round: state.round, participants, ready }
  }
}

export type Instant = 'between-readies' | 'after-release' | 'between-dones' | 'after-clean-restart' | 'in-flight'
export const INSTANTS: Instant[] = ['between-readies', 'after-release', 'between-dones', 'after-clean-restart', 'in-flight']

/**
 * Play rounds against `pick()` (the process to talk to) until `instant` comes, then return the
 * process to kill (the one that answered last) — or, for in-flight, kill it with a request
 * unanswered. At most `maxSteps` steps: past them the kill happens wherever the round is.
 */
export async function playUntil (ledger: Ledger, pick: () => RoundgateProcess, instant: Instant, random: () => number, maxSteps = 24): Promise<RoundgateProcess> {
  let node = pick()
  let view = await ledger.check(node.base, `before ${instant}`)
  const doneNow = new Set<string>()
  for (let step = 0; step < maxSteps; step++) {
    node = pick()
    const busy = new Set(view.phase === 'EXECUTING' ? view.participants : [])
    const idle = TERMINALS.filter((id) => !busy.has(id) && !view.ready.includes(id))
    const pending = view.phase === 'EXECUTING' ? view.participants.filter((id) => !doneNow.has(id)) : []
    const doDone = pending.length > 0 && (idle.length === 0 || random() < 0.6)
    if (instant === 'in-flight' && step >= 1 && random() < 0.5) {
      // a request the process may or may not have applied when it dies: nothing is promised about it
      const body = doDone ? { clientId: pending[0], round: view.round } : { clientId: idle[0] ?? 't0' }
      api(node.base, 'POST', `/v1/groups/${GROUP}/${doDone ? 'done' : 'ready'}`, body, 3000).then((res) => {
        ledger.inFlight.push(`answered ${res.status}`)
      }, (err: Error) => { ledger.inFlight.push(`unanswered: ${err.message}`) })
      await sleep(Math.floor(random() * 4))
      return node
    }
    if (doDone) {
      const id = pending[Math.floor(random() * pending.length)]
      const res = await api(node.base, 'POST', `/v1/groups/${GROUP}/done`, { clientId: id, round: view.round })
      if (res.status !== 200) throw new Error(`done ${id} round ${view.round} answered ${res.status} ${JSON.stringify(res.json)}`)
      ledger.dones.set(`${view.round}/${id}`, { round: view.round, id })
      doneNow.add(id)
      const last = doneNow.size === view.participants.length
      if (instant === 'between-dones' && !last) return node
    } else if (idle.length > 0) {
      const id = idle[Math.floor(random() * idle.length)]
      const before = view.round
      const res = await api(node.base, 'POST', `/v1/groups/${GROUP}/ready`, { clientId: id })
      if (res.status !== 200) throw new Error(`ready ${id} answered ${res.status} ${JSON.stringify(res.json)}`)
      ledger.readies.set(id, res.json.round as number)
      ledger.sawNumber(res.json.round as number, `ready ${id}`)
      const released = res.json.phase === 'EXECUTING' && res.json.round > before
      if (instant === 'after-release' && released) return node
      if (instant === 'between-readies' && !released && view.phase !== 'EXECUTING') return node
    }
    const next = await ledger.check(node.base, `step ${step} of ${instant}`)
    if (next.round !== view.round) doneNow.clear()
    view = next
  }
  return node
}

/** Every terminal heard from (they may have been forgotten by a process that died before writing them). */
export async function greet (base: string): Promise<void> {
  for (const id of TERMINALS) {
    const res = await api(base, 'POST', `/v1/groups/${GROUP}/heartbeat`, { clientId: id })
    if (res.status !== 200) throw new Error(`heartbeat ${id} answered ${res.status} ${JSON.stringify(res.json)}`)
  }
}
