// release: issue 11's release targets and issue 9's store target in one command.
//   --door mqtt   N MQTT participants; rivals in the same run, by the same generator processes:
//                 vanilla aedes and Mosquitto fanning one plain 64-byte QoS 1 message out to N
//                 subscribers (Mosquitto when installed). The in-broker probe times the deciding
//                 message's read to the first release write (bench/tools/probe.ts).
//   --door http   N HTTP long-poll participants; rival: the minimal node:http long-poll server
//                 (bench/rivals/http-longpoll.ts) answering the same clients the same way.
//   --door mixed  N/2 MQTT + N/2 HTTP, then N on each door alone: the mixed round against the
//                 slower single door.
//   --store sqlite  every roundgate run above twice: --data-dir "" (memory) and a fresh data dir.
// Rounds and receipts: bench/lib/rounds.ts. Each release received is checked (bench/gen/check.ts).
import { Fleet } from '../lib/fleet.js'
import { join } from 'node:path'
import { startAedes, startHttpRival, startMosquitto, startRoundgate, tempDir, type Broker } from '../lib/procs.js'
import { dist, table, verdict, verdictTable, type ScenarioResult, type Verdict } from '../lib/report.js'
import { httpRivalTarget, ids, medianLast, roundgateTarget, runRounds, type RoundResult } from '../lib/rounds.js'
import { dataDirFor, gensFor, NOT_INSTALLED, plainFanout, storeLabel, storesOf, type FanoutRun, type Options } from './common.js'

const GROUP = 'bench'

interface Config { name: string, mqtt: number, http: number }
interface Measured { config: Config, store: string, label: string, rounds: RoundResult[] }

async function measureRoundgate (fleet: Fleet, c: Config, rounds: number, store: 'memory' | 'sqlite' | 'redis'): Promise<Measured> {
  const n = c.mqtt + c.http
  const dataDir = dataDirFor(store)
  const probeFile = join(tempDir(), 'probe.txt')
  const decider = c.mqtt > 0 ? ids('m', c.mqtt)[c.mqtt - 1] : ''
  const rg = await startRoundgate({
    dataDir,
    probe: c.mqtt > 0 ? { match: `rg/${GROUP}/ready/${decider}`, topic: `rg/${GROUP}/release`, file: probeFile } : undefined,
    groups: { [GROUP]: { need: n, minOnlineRatio: 1, offlineAfterMs: 600000, heartbeatMs: 60000, execTimeoutMs: 600000, resetMs: 0 } }
  })
  try {
    const rs = await runRounds(fleet, { target: roundgateTarget([rg], GROUP, `roundgate ${c.name}, ${store}`), mqtt: c.mqtt, http: c.http, rounds, probeFile: c.mqtt > 0 ? probeFile : undefined })
    return { config: c, store, label: storeLabel(store, dataDir), rounds: rs }
  } finally {
    await rg.stop()
  }
}

/** Rows for one measured configuration: pooled receipts, per-round last, in-broker figures, what was received. */
function rowsOf (label: string, rs: RoundResult[]): Array<Array<string | number | null>> {
  const rows: Array<Array<string | number | null>> = []
  const all = dist(rs.flatMap((r) => r.ms))
  const missing = rs.reduce((a, r) => a + r.missing, 0)
  const bad = rs.reduce((a, r) => a + r.bad, 0)
  const bytes = `${Math.min(...rs.map((r) => r.bytesMin))}-${Math.max(...rs.map((r) => r.bytesMax))}`
  rows.push([`${label}${rs.length > 1 ? `, ${rs.length} rounds pooled` : ''}`, all.first, all.p50, all.p99, all.last, String(missing), String(bad), bytes])
  if (rs.length > 1) {
    const l = dist(rs.map((r) => r.d.last))
    rows.push(['  per-round last: min/p50/p99/max', l.first, l.p50, l.p99, l.last, null, null, null])
  }
  const probe = dist(rs.flatMap((r) => r.recvToWrite === null ? [] : [r.recvToWrite]))
  if (probe.n > 0) rows.push([`  in the broker: deciding read -> first release write, min/p50/p99/max over ${probe.n} round(s)`, probe.first, probe.p50, probe.p99, probe.last, null, null, null])
  for (const door of ['mqtt', 'http']) {
    const f = dist(rs.flatMap((r) => r.fanout[door] === undefined ? [] : [r.fanout[door]]))
    if (f.n > 0) rows.push([`  in the broker: ${door} fan-out (all handed to sockets), min/p50/p99/max`, f.first, f.p50, f.p99, f.last, null, null, null])
  }
  const formats: Record<string, number> = {}
  for (const r of rs) for (const [k, v] of Object.entries(r.formats)) formats[k] = (formats[k] ?? 0) + v
  const problems = [...new Set(rs.flatMap((r) => r.problems))].slice(0, 3)
  const polls = rs.reduce((a, r) => a + r.pollFailures, 0)
  rows.push([`  releases received: ${formats.count ?? 0} with participants as a count (1.1), ${formats.list ?? 0} as a list (1.0)` +
    `${(formats.unknown ?? 0) > 0 ? `, ${formats.unknown} neither` : ''}${problems.length > 0 ? `; problems: ${problems.join('; ')}` : ''}${polls > 0 ? `; ${polls} long-polls failed` : ''}`, null, null, null, null, null, null, null])
  return rows
}

function fanoutRows (label: string, runs: FanoutRun[]): Array<Array<string | number | null>> {
  const l = dist(runs.map((r) => r.d.last))
  const pick = [...runs].sort((a, b) => a.d.last - b.d.last)[Math.floor((runs.length - 1) / 2)]
  return [[`${label}${runs.length > 1 ? ` (the run with the median last of ${runs.length})` : ''}`, pick.d.first, pick.d.p50, pick.d.p99, pick.d.last,
    String(runs.reduce((a, r) => a + r.missing, 0)), String(runs.reduce((a, r) => a + r.bad, 0)), '64'],
  ...(runs.length > 1 ? [['  last over runs: min/p50/p99/max', l.first, l.p50, l.p99, l.last, null, null, null]] : [])]
}

export async function release (o: Options): Promise<ScenarioResult> {
  const n = o.n
  const rounds = o.rounds
  const fleet = new Fleet(gensFor(n, o.gens))
  const half = Math.floor(n / 2)
  const configs: Config[] = o.door === 'mqtt'
    ? [{ name: 'mqtt', mqtt: n, http: 0 }]
    : o.door === 'http'
      ? [{ name: 'http', mqtt: 0, http: n }]
      : [{ name: 'mixed', mqtt: half, http: n - half }, { name: 'mqtt', mqtt: n, http: 0 }, { name: 'http', mqtt: 0, http: n }]
  const measured: Measured[] = []
  const rows: Array<Array<string | number | null>> = []
  const verdicts: Verdict[] = []
  const data: Record<string, unknown> = { n, door: o.door, rounds, generators: fleet.gens.length }
  try {
    for (const store of storesOf(o)) {
      for (const c of configs) {
        const m = await measureRoundgate(fleet, c, rounds, store)
        measured.push(m)
        rows.push(...rowsOf(`roundgate, ${c.name === 'mixed' ? `mixed (${c.mqtt} MQTT + ${c.http} HTTP)` : `${c.name} door`}, ${m.label}`, m.rounds))
      }
    }
    const mem = (name: string): Measured => measured.find((m) => m.store === 'memory' && m.config.name === name) as Measured
    const main = mem(configs[0].name)
    const mine = medianLast(main.rounds)
    const med = rounds > 1 ? `median of ${rounds} rounds` : 'one round'

    if (o.door === 'mqtt') {
      const probe = dist(main.rounds.flatMap((r) => r.recvToWrite === null ? [] : [r.recvToWrite]))
      const rivals: Array<[string, () => Promise<Broker | null>]> = [['vanilla aedes 1.2, 64 B', startAedes], ['mosquitto, 64 B', startMosquitto]]
      for (const [name, start] of o.compare ? rivals : []) {
        const b = await start()
        let value: number | null = null
        if (b === null) rows.push([`${name}: ${NOT_INSTALLED}`, null, null, null, null, null, null, null])
        else {
          try {
            const runs = await plainFanout(fleet, b, n, 64, 1, name, rounds)
            rows.push(...fanoutRows(`${name}, one plain QoS 1 message to ${n} subscribers`, runs))
            value = medianLast(runs)
            data[b.kind] = { runs, last: dist(runs.map((r) => r.d.last)) }
          } finally {
            await b.stop()
          }
        }
        const aedes = name.startsWith('vanilla')
        verdicts.push(verdict(`release to ${n} MQTT participants, last (ms, ${med})`, mine, name, value, { op: '<=', value: aedes ? 0.5 : 1 }, n !== 10000 ? 'target set at 10,000' : undefined))
      }
      verdicts.push(verdict(`deciding read -> first release write, p99 over ${probe.n} round(s) (ms)`, probe.n > 0 ? probe.p99 : null, '-', null, { op: '<=', value: 1 }, n !== 10000 ? 'target set at 10,000' : undefined))
    }

    if (o.door === 'http') {
      let value: number | null = null
      if (o.compare) {
        const b = await startHttpRival(n)
        try {
          const rs = await runRounds(fleet, { target: httpRivalTarget(b, GROUP), mqtt: 0, http: n, rounds })
          rows.push(...rowsOf('node:http long-poll rival (bench/rivals/http-longpoll.ts)', rs))
          value = medianLast(rs)
          data.httpRival = { rounds: rs.map(({ ms: _ms, ...r }) => r), last: dist(rs.map((r) => r.d.last)) }
        } finally {
          await b.stop()
        }
      }
      verdicts.push(verdict(`release to ${n} HTTP long-poll participants, last (ms, ${med})`, mine, 'node:http long-poll', value, { op: '<=', value: 0.5 }, n !== 3000 ? 'target set at 3,000' : undefined))
      verdicts.push(verdict(`release to ${n} HTTP long-poll participants, last (ms, ${med})`, mine, '-', null, { op: '<=', value: 100 }, n !== 10000 ? 'target set at 10,000' : undefined))
    }

    if (o.door === 'mixed') {
      const m = medianLast(mem('mqtt').rounds)
      const h = medianLast(mem('http').rounds)
      verdicts.push(verdict(`mixed round (${half} MQTT + ${n - half} HTTP), last (ms, ${med})`, mine, `slower door alone (${h >= m ? 'HTTP' : 'MQTT'}, ${n})`, Math.max(m, h), { op: '<=', value: 1 }))
    }

    if (o.store === 'sqlite') {
      for (const c of configs) {
        const sq = measured.find((x) => x.store === 'sqlite' && x.config.name === c.name) as Measured
        const sqlite = sq.label.startsWith('SQLite')
        verdicts.push(verdict(`${c.name}: ${sqlite ? 'SQLite' : 'data-dir'} store, last (ms, ${med})`, medianLast(sq.rounds), 'memory store, same run', medianLast(mem(c.name).rounds),
          sqlite ? { op: '<=', value: 1.2 } : null, sqlite ? (n !== 10000 ? 'target set at 10,000' : undefined) : 'not judged: this build has no SQLite store'))
      }
    }

    const sizes = main.rounds.map((r) => r.bytesMax)
    verdicts.push(verdict('release size, bytes (largest received)', Math.max(...sizes), '-', null, { op: '<=', value: 1024 }, 'PROTOCOL 1.1: a few hundred bytes'))

    data.roundgate = measured.map((m) => ({ config: m.config, store: m.store, label: m.label, rounds: m.rounds.map(({ ms: _ms, skew: _s, ...r }) => r), last: dist(m.rounds.map((r) => r.d.last)) }))
    data.verdicts = verdicts
    const text = [
      table(`release: ${n} participants, door ${o.door}, ms from the deciding message's write to each participant's receipt of its whole release (2 cores shared by the server under test and ${fleet.gens.length} generators)`,
        ['', 'first', 'p50', 'p99', 'last', 'missing', 'bad', 'bytes'], rows),
      '',
      verdictTable(`targets (issue 11${o.store === 'sqlite' ? ', issue 9' : ''}): roundgate beside its rival, same run, same generator processes; ratio = roundgate / rival`, verdicts)
    ].join('\n')
    return { scenario: 'release', text, data }
  } finally {
    await fleet.close()
  }
}
