// npm run bench -- <scenario> [options]
//   release       --n 1000|10000  --door mqtt|http|mix  [--rounds R]
//   heartbeat     [--clients 1000] [--seconds 10]
//   overhead      [--clients 20] [--seconds 5] [--bytes 64]
//   fanout-peers  [--n 10000] [--bytes 64] [--qos 0|1]
//   memory        [--n 10000]
//   cluster       [--n 1000]
// common: --gens G (generator processes; default ceil(n/3000), at least 2), --json
// Loopback only; every broker and generator started here is killed when the run ends.
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { killAll } from './lib/procs.js'
import type { ScenarioResult } from './lib/report.js'
import type { Options } from './scenarios/common.js'
import { cluster } from './scenarios/cluster.js'
import { fanoutPeers } from './scenarios/fanout.js'
import { heartbeat } from './scenarios/heartbeat.js'
import { memory } from './scenarios/memory.js'
import { overhead } from './scenarios/overhead.js'
import { release } from './scenarios/release.js'

const SCENARIOS: Record<string, (o: Options) => Promise<ScenarioResult>> = {
  release, heartbeat, overhead, 'fanout-peers': fanoutPeers, memory, cluster
}

const USAGE = `usage: npm run bench -- <${Object.keys(SCENARIOS).join('|')}> [--n N] [--door mqtt|http|mix] [--rounds R] [--clients C] [--seconds S] [--qos 0|1] [--bytes B] [--gens G] [--skip-compare] [--json]`

async function main (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      door: { type: 'string', default: 'mqtt' },
      rounds: { type: 'string', default: '1' },
      gens: { type: 'string', default: '0' },
      seconds: { type: 'string' },
      qos: { type: 'string', default: '1' },
      clients: { type: 'string' },
      bytes: { type: 'string' },
      json: { type: 'boolean', default: false },
      'skip-compare': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  const name = positionals[0]
  if (values.help || name === undefined || SCENARIOS[name] === undefined) {
    process.stderr.write(USAGE + '\n')
    return values.help ? 0 : 2
  }
  const int = (v: string | undefined, d: number, what: string, min = 0, max = 1e6): number => {
    const x = v === undefined ? d : Number(v)
    if (!Number.isInteger(x) || x < min || x > max) throw new Error(`--${what} must be a whole number from ${min} to ${max}`)
    return x
  }
  const door = values.door as Options['door']
  if (!['mqtt', 'http', 'mix'].includes(door)) throw new Error('--door must be mqtt, http or mix')
  const defaults: Record<string, { n: number, seconds: number, clients: number }> = {
    release: { n: 1000, seconds: 10, clients: 1 },
    heartbeat: { n: 1, seconds: 10, clients: 1000 },
    overhead: { n: 1, seconds: 5, clients: 20 },
    'fanout-peers': { n: 10000, seconds: 10, clients: 1 },
    memory: { n: 10000, seconds: 10, clients: 1 },
    cluster: { n: 1000, seconds: 10, clients: 1 }
  }
  const d = defaults[name]
  const o: Options = {
    n: int(values.n, d.n, 'n', 1, 30000),
    door,
    rounds: int(values.rounds, 1, 'rounds', 1, 200),
    gens: int(values.gens, 0, 'gens', 0, 16),
    seconds: int(values.seconds, d.seconds, 'seconds', 1, 120),
    qos: int(values.qos, 1, 'qos', 0, 1) as 0 | 1,
    clients: int(values.clients, d.clients, 'clients', 1, 20000),
    json: values.json,
    bytes: values.bytes === undefined ? null : int(values.bytes, 64, 'bytes', 1, 1000000),
    compare: !values['skip-compare']
  }
  const started = Date.now()
  const load0 = loadavg()[0]
  // a run never outlives its bound: 15 minutes at most
  const guard = setTimeout(() => { process.stderr.write('\nbench: time limit reached, stopping\n'); killAll(); process.exit(3) }, 15 * 60000)
  guard.unref()
  const res = await SCENARIOS[name](o)
  const meta = { scenario: name, date: new Date().toISOString(), node: process.version, seconds: (Date.now() - started) / 1000, loadavg1: [load0, loadavg()[0]], options: o }
  if (o.json) process.stdout.write(JSON.stringify({ ...meta, ...res.data }, null, 2) + '\n')
  else process.stdout.write(`${res.text}\n(1-min load average ${load0.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after: other work on this machine shows here)\n`)
  return 0
}

main(process.argv.slice(2)).then((code) => { killAll(); process.exit(code) }, (err: Error) => {
  process.stderr.write(`\nbench: ${err.stack ?? err.message}\n`)
  killAll()
  process.exit(1)
})
