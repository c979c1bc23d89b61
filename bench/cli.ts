// npm run bench -- <scenario> [options]   (docs/benchmarks.md describes each scenario and its method)
//   release       --n N [--door mqtt|http|mixed] [--store memory|sqlite] [--rounds R] [--skip-compare]
//   startskew     [--n N] [--delays 0,20,50,100] [--rounds R]       (default sizes 1,000 and 10,000)
//   cluster       [--n 10000] [--rounds R]
//   heartbeat     [--clients 1000] [--seconds 10] [--store memory|sqlite|redis]
//   overhead      [--clients 20] [--seconds 5] [--bytes 64]
//   fanout-peers  [--n 10000] [--bytes 64] [--qos 0|1] [--rounds R]
//   memory        [--n 10000]
//   aborts        [--n 100000]
// common: --gens G (generator processes; default ceil(n/3000), at least 2), --json, --max-minutes M
// Loopback only; every broker and generator started here is killed when the run ends.
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { killAll } from './lib/procs.js'
import type { ScenarioResult } from './lib/report.js'
import { aborts } from './scenarios/aborts.js'
import { cluster } from './scenarios/cluster.js'
import type { Options } from './scenarios/common.js'
import { fanoutPeers } from './scenarios/fanout.js'
import { heartbeat } from './scenarios/heartbeat.js'
import { memory } from './scenarios/memory.js'
import { overhead } from './scenarios/overhead.js'
import { release } from './scenarios/release.js'
import { startskew } from './scenarios/startskew.js'

const SCENARIOS: Record<string, { run: (o: Options) => Promise<ScenarioResult>, n: number, seconds: number, clients: number }> = {
  release: { run: release, n: 1000, seconds: 10, clients: 1 },
  startskew: { run: startskew, n: 1000, seconds: 10, clients: 1 },
  cluster: { run: cluster, n: 10000, seconds: 10, clients: 1 },
  heartbeat: { run: heartbeat, n: 1, seconds: 10, clients: 1000 },
  overhead: { run: overhead, n: 1, seconds: 5, clients: 20 },
  'fanout-peers': { run: fanoutPeers, n: 10000, seconds: 10, clients: 1 },
  memory: { run: memory, n: 10000, seconds: 10, clients: 1 },
  aborts: { run: aborts, n: 100000, seconds: 10, clients: 1 }
}

const USAGE = `usage: npm run bench -- <${Object.keys(SCENARIOS).join('|')}> [--n N] [--door mqtt|http|mixed] [--store memory|sqlite] [--rounds R]
  [--delays 0,20,50,100] [--clients C] [--seconds S] [--qos 0|1] [--bytes B] [--gens G] [--skip-compare] [--max-minutes M] [--json]
(docs/benchmarks.md describes every scenario)`

/** Bad options: said in one line with the usage, exit status 2, no stack. */
class UsageError extends Error {}

function parse (argv: string[]) { // the options object types what parseArgs answers
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      door: { type: 'string', default: 'mqtt' },
      store: { type: 'string', default: 'memory' },
      rounds: { type: 'string', default: '1' },
      delays: { type: 'string', default: '0,20,50,100' },
      gens: { type: 'string', default: '0' },
      seconds: { type: 'string' },
      qos: { type: 'string', default: '1' },
      clients: { type: 'string' },
      bytes: { type: 'string' },
      json: { type: 'boolean', default: false },
      'skip-compare': { type: 'boolean', default: false },
      'max-minutes': { type: 'string', default: '15' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
}

async function main (argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (err) {
    throw new UsageError((err as Error).message) // an unknown option, a missing value
  }
  const { values, positionals } = parsed
  const name = positionals[0]
  const sc = name === undefined ? undefined : SCENARIOS[name]
  if (values.help || sc === undefined || positionals.length > 1) {
    process.stderr.write(USAGE + '\n')
    return values.help ? 0 : 2
  }
  const int = (v: string | undefined, d: number, what: string, min = 0, max = 1e6): number => {
    const x = v === undefined ? d : Number(v)
    if (!Number.isInteger(x) || x < min || x > max) throw new UsageError(`--${what} must be a whole number from ${min} to ${max}`)
    return x
  }
  const door = values.door === 'mix' ? 'mixed' : values.door
  if (door !== 'mqtt' && door !== 'http' && door !== 'mixed') throw new UsageError('--door must be mqtt, http or mixed')
  if (values.store !== 'memory' && values.store !== 'sqlite' && values.store !== 'redis') throw new UsageError('--store must be memory, sqlite or redis (redis: heartbeat only)')
  if (values.store === 'redis' && name !== 'heartbeat') throw new UsageError('--store redis is for the heartbeat scenario (the cluster scenario runs on Redis)')
  const delays = values.delays.split(',').map((d) => int(d.trim(), 0, 'delays (each)', 0, 60000))
  const o: Options = {
    // 15,000 terminals at most: the broker under test holds one descriptor each (20,000 open files
    // per process here); aborts opens only 2,000 at a time
    n: int(values.n, sc.n, 'n', 1, name === 'aborts' ? 1000000 : 15000),
    nGiven: values.n !== undefined,
    door,
    store: values.store,
    rounds: int(values.rounds, 1, 'rounds', 1, 200),
    gens: int(values.gens, 0, 'gens', 0, 16),
    seconds: int(values.seconds, sc.seconds, 'seconds', 1, 120),
    qos: int(values.qos, 1, 'qos', 0, 1) as 0 | 1,
    clients: int(values.clients, sc.clients, 'clients', 1, 15000),
    json: values.json,
    bytes: values.bytes === undefined ? null : int(values.bytes, 64, 'bytes', 1, 1000000),
    compare: !values['skip-compare'],
    delays
  }
  const maxMinutes = int(values['max-minutes'], 15, 'max-minutes', 1, 120)
  // generators never outlive the run's bound either
  process.env.BENCH_GEN_MAX_MS = String(maxMinutes * 60000 + 30000)
  const started = Date.now()
  const load0 = loadavg()[0]
  const guard = setTimeout(() => { process.stderr.write(`\nbench: time limit of ${maxMinutes} minutes reached (--max-minutes), stopping\n`); killAll(); process.exit(3) }, maxMinutes * 60000)
  guard.unref()
  const res = await sc.run(o)
  const meta = { scenario: name, date: new Date().toISOString(), node: process.version, seconds: (Date.now() - started) / 1000, loadavg1: [load0, loadavg()[0]], options: o }
  if (o.json) process.stdout.write(JSON.stringify({ ...meta, ...res.data }, null, 2) + '\n')
  else process.stdout.write(`${res.text}\n(${((Date.now() - started) / 1000).toFixed(0)} s; 1-min load average ${load0.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after: other work on this machine shows here)\n`)
  return 0
}

main(process.argv.slice(2)).then((code) => { killAll(); process.exit(code) }, (err: Error) => {
  if (err instanceof UsageError) process.stderr.write(`bench: ${err.message}\n${USAGE}\n`)
  else process.stderr.write(`\nbench: ${err.stack ?? err.message}\n`)
  killAll()
  process.exit(err instanceof UsageError ? 2 : 1)
})
