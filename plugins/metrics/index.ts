// Prometheus metrics with prom-client, one registry per server (never the global one, so tests and
// several servers in one process do not collide). Served by the gateway at GET /metrics.
//
//   roundgate_mqtt_connected_clients                 gauge    aedes connectedClients
//   roundgate_http_longpolls_pending                 gauge    release long-polls waiting now
//   roundgate_group_phase{group,phase}               gauge    1 for the group's phase, else 0
//   roundgate_group_round{group}                     gauge
//   roundgate_group_paused{group}                    gauge    1 when paused
//   roundgate_group_online{group,role}               gauge
//   roundgate_group_ready{group,role}                gauge
//   roundgate_group_participants{group}              gauge    of the executing round
//   roundgate_group_done{group}                      gauge
//   roundgate_group_dropped{group}                   gauge
//   roundgate_rounds_total{group,outcome}            counter  rounds ended by this process
//   roundgate_release_fanout_seconds{door}           histogram time to hand a release to its participants
//   roundgate_refused_total{code,door}               counter  messages refused, by error code
//   roundgate_http_requests_total{route,method,status} counter
//   roundgate_round_duration_seconds{group}          histogram a round's endedAt − startAt (0 when it ended before its start)
//   roundgate_release_to_done_seconds{group}         histogram each participant's done report, from startAt (0 when earlier)
//   roundgate_alert_deliveries_total{outcome}        counter  alert webhooks: delivered, retried, failed, dropped
// plus prom-client's default process and Node.js metrics.
//
// Group gauges are read from the store at scrape time (listGroups), so they also show what other
// brokers of a cluster did; counters and histograms count what this process did (a round's
// timeline is observed by the process that ended it, so a cluster observes each round once).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { AlertObserver, AlertOutcome } from '../alerts/index.js'
import type { DoorName, DoorObserver, Engine, GroupState, Phase, RoundSummary } from '../scheduler/index.js'
import type { ErrorCode } from '../errors.js'

const PHASES: readonly Phase[] = ['WAITING', 'EXECUTING', 'RESET']
const ALERT_OUTCOMES: readonly AlertOutcome[] = ['delivered', 'retried', 'failed', 'dropped']

export interface MetricsOptions {
  engine: Engine
  /** the aedes broker, for connected MQTT clients */
  broker?: { connectedClients: number }
  /** prom-client's default process/Node.js metrics (default true) */
  defaultMetrics?: boolean
}

/** One release handed out by one door of this process. */
export interface FanoutRecord {
  round: number
  door: DoorName
  ms: number
  delivered: number
}

/** Fan-outs remembered per group for the dashboard (GET /v1/groups/{g}/fanout). */
const FANOUTS_KEPT = 200

/** The doors report refusals and fan-outs here (DoorObserver); the engine reports nothing. */
export interface Metrics extends DoorObserver, AlertObserver {
  readonly registry: Registry
  /** The Prometheus text exposition, fresh group gauges included. */
  render (): Promise<{ contentType: string, body: string }>
  /** One HTTP request answered (or aborted), by route pattern. */
  observeHttp (route: string, method: string, status: number | string): void
  /** The last fan-outs of a group in this process, newest first. */
  fanouts (group: string): FanoutRecord[]
  /** A source of pending long-polls (the gateway); returns a function removing it. */
  addPendingSource (count: () => number): () => void
  /** Detach from the engine. */
  close (): void
}

export function createMetrics (opts: MetricsOptions): Metrics {
  const { engine, broker } = opts
  const registry = new Registry()
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const pendingSources = new Set<() => number>()

  new Gauge({
    name: 'roundgate_mqtt_connected_clients',
    help: 'MQTT clients connected to this broker',
    registers,
    collect () { this.set(broker?.connectedClients ?? 0) }
  })
  new Gauge({
    name: 'roundgate_http_longpolls_pending',
    help: 'HTTP release long-polls waiting for a release',
    registers,
    collect () {
      let n = 0
      for (const f of pendingSources) n += f()
      this.set(n)
    }
  })
  const phase = new Gauge({ name: 'roundgate_group_phase', help: 'the group phase (1 for the current one)', labelNames: ['group', 'phase'], registers })
  const round = new Gauge({ name: 'roundgate_group_round', help: 'the group round number', labelNames: ['group'], registers })
  const paused = new Gauge({ name: 'roundgate_group_paused', help: '1 when the group is paused', labelNames: ['group'], registers })
  const online = new Gauge({ name: 'roundgate_group_online', help: 'online terminals', labelNames: ['group', 'role'], registers })
  const ready = new Gauge({ name: 'roundgate_group_ready', help: 'ready terminals', labelNames: ['group', 'role'], registers })
  const participants = new Gauge({ name: 'roundgate_group_participants', help: 'participants of the executing round', labelNames: ['group'], registers })
  const done = new Gauge({ name: 'roundgate_group_done', help: 'participants done in the executing round', labelNames: ['group'], registers })
  const dropped = new Gauge({ name: 'roundgate_group_dropped', help: 'participants dropped in the executing round', labelNames: ['group'], registers })
  const groupGauges = [phase, round, paused, online, ready, participants, done, dropped]

  const rounds = new Counter({ name: 'roundgate_rounds_total', help: 'rounds ended by this process, by outcome', labelNames: ['group', 'outcome'], registers })
  const fanout = new Histogram({
    name: 'roundgate_release_fanout_seconds',
    help: 'time to hand one release to its participants in this process, by door',
    labelNames: ['door'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers
  })
  const refused = new Counter({ name: 'roundgate_refused_total', help: 'messages refused, by error code and door', labelNames: ['code', 'door'], registers })
  const http = new Counter({ name: 'roundgate_http_requests_total', help: 'HTTP requests by route pattern, method and status', labelNames: ['route', 'method', 'status'], registers })

  const duration = new Histogram({
    name: 'roundgate_round_duration_seconds',
    help: 'rounds ended by this process: from startAt to the end, by group',
    labelNames: ['group'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers
  })
  const doneDelay = new Histogram({
    name: 'roundgate_release_to_done_seconds',
    help: 'each participant\'s done report from the round\'s startAt, in rounds ended by this process, by group',
    labelNames: ['group'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers
  })
  const alerts = new Counter({ name: 'roundgate_alert_deliveries_total', help: 'alert webhook deliveries by outcome: delivered, retried (an attempt failed, another follows), failed (given up), dropped (queue full or shutdown)', labelNames: ['outcome'], registers })
  for (const outcome of ALERT_OUTCOMES) alerts.inc({ outcome }, 0)

  const onRoundEnd = (s: RoundSummary, local: boolean): void => {
    if (!local) return
    rounds.inc({ group: s.group, outcome: s.outcome })
    duration.observe({ group: s.group }, Math.max(0, s.endedAt - s.startAt) / 1000)
    for (const ms of Object.values(s.doneMs)) doneDelay.observe({ group: s.group }, Math.max(0, ms) / 1000)
  }
  engine.on('roundEnd', onRoundEnd)
  const recent = new Map<string, FanoutRecord[]>()
  const forget = (group: string): void => {
    recent.delete(group)
    duration.remove({ group })
    doneDelay.remove({ group })
  }
  engine.on('deleted', forget)

  function setGroups (states: GroupState[]): void {
    for (const g of groupGauges) g.reset()
    for (const s of states) {
      const group = s.group
      for (const p of PHASES) phase.set({ group, phase: p }, s.phase === p ? 1 : 0)
      round.set({ group }, s.round)
      paused.set({ group }, s.paused ? 1 : 0)
      online.set({ group, role: 'small' }, s.online - s.onlineBoss)
      online.set({ group, role: 'boss' }, s.onlineBoss)
      ready.set({ group, role: 'small' }, s.ready - s.readyBoss)
      ready.set({ group, role: 'boss' }, s.readyBoss)
      participants.set({ group }, s.participants)
      done.set({ group }, s.done)
      dropped.set({ group }, s.dropped)
    }
  }

  return {
    registry,
    async render () {
      setGroups(await engine.listGroups())
      // prom-client writes NaN as `Nan` (e.g. event-loop lag before its first sample); the text
      // format spells it `NaN`
      const body = (await registry.metrics()).replace(/ Nan$/gm, ' NaN')
      return { contentType: registry.contentType, body }
    },
    refused (code: ErrorCode, door: DoorName) {
      refused.inc({ code, door })
    },
    fanout (door: DoorName, group: string, round: number, seconds: number, delivered: number) {
      fanout.observe({ door }, seconds)
      let list = recent.get(group)
      if (list === undefined) recent.set(group, list = [])
      list.push({ round, door, ms: Math.round(seconds * 1e6) / 1e3, delivered })
      if (list.length > FANOUTS_KEPT) list.splice(0, list.length - FANOUTS_KEPT)
    },
    fanouts (group: string) {
      return [...(recent.get(group) ?? [])].reverse()
    },
    alertDelivery (outcome: AlertOutcome) {
      alerts.inc({ outcome })
    },
    observeHttp (route, method, status) {
      http.inc({ route, method, status: String(status) })
    },
    addPendingSource (count) {
      pendingSources.add(count)
      return () => { pendingSources.delete(count) }
    },
    close () {
      engine.off('roundEnd', onRoundEnd)
      engine.off('deleted', forget)
    }
  }
}
