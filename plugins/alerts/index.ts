// Alerts (PROTOCOL section 9): webhooks POSTed when a round ends `aborted` or `timeout`, a
// scheduled tick is `missed`, a `retry` is scheduled, or retries are `exhausted`. Each event is
// raised only by the process whose transition caused it (the engine's `roundEnd` with local=true
// and its `notice`), so a cluster sends it once. Delivery is queued per destination
// (destination.ts): it never delays a round.
import type { Logger } from 'pino'
import type { Engine, EngineEvents, RoundSummary } from '../scheduler/index.js'
import { Destination, type AlertBody, type AlertObserver, type DestinationOptions } from './destination.js'

export { signature, RETRY_DELAYS_MS, ATTEMPT_TIMEOUT_MS, QUEUE_LIMIT, type AlertBody, type AlertObserver, type AlertOutcome } from './destination.js'

/** How long a shutdown waits for queued alerts to go out. */
export const CLOSE_GRACE_MS = 2000

export const ALERT_EVENTS = ['aborted', 'timeout', 'missed', 'retry', 'exhausted'] as const
export type AlertEvent = typeof ALERT_EVENTS[number]

/** One entry of the server setting `alerts`. */
export interface AlertRule {
  url: string
  events: AlertEvent[]
  /** which groups: a glob (`*` any run of characters, `?` one); all groups when absent */
  groups?: string
  secret?: string
}

type Notice = EngineEvents['notice'][0]

export interface AlertsOptions extends Pick<DestinationOptions, 'retryDelaysMs' | 'timeoutMs' | 'queueLimit'> {
  engine: Engine
  rules: readonly AlertRule[]
  logger: Logger
  observer?: AlertObserver
}

export interface Alerts {
  /** alerts queued or in flight, over every destination */
  pending (): number
  /**
   * Detach from the engine and stop sending: queued alerts get `graceMs` (default 2000) to go out,
   * what is left then is logged and counted as dropped.
   */
  close (graceMs?: number): Promise<void>
}

/** A group glob as a matcher: `*` any run of characters, `?` exactly one, anything else itself. */
export function globMatcher (glob: string): (group: string) => boolean {
  const re = new RegExp(`^${glob.split('').map((c) => c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')).join('')}$`)
  return (group) => re.test(group)
}

export function installAlerts (opts: AlertsOptions): Alerts {
  const { engine, logger } = opts
  const routes = opts.rules.map((rule) => ({
    events: new Set<string>(rule.events),
    matches: rule.groups === undefined ? () => true : globMatcher(rule.groups),
    to: new Destination({
      url: rule.url,
      secret: rule.secret,
      logger,
      observer: opts.observer,
      retryDelaysMs: opts.retryDelaysMs,
      timeoutMs: opts.timeoutMs,
      queueLimit: opts.queueLimit
    })
  }))

  const raise = (alert: AlertBody): void => {
    for (const r of routes) {
      if (r.events.has(alert.event) && r.matches(alert.group)) r.to.push(alert)
    }
  }

  const onRoundEnd = (s: RoundSummary, local: boolean): void => {
    if (!local || s.outcome === 'completed') return
    raise({ event: s.outcome, group: s.group, round: s.round, at: Math.round(engine.now()), detail: s })
  }
  const onNotice = (n: Notice): void => {
    const at = Math.round(engine.now())
    switch (n.type) {
      case 'missed':
        raise({ event: 'missed', group: n.group, at, detail: { tick: n.missed.tick, reason: n.missed.reason } })
        break
      case 'retry':
        raise({ event: 'retry', group: n.group, round: n.round, at, detail: { round: n.round, attempt: n.attempt, notBefore: n.at, job: n.job } })
        break
      case 'exhausted':
        raise({ event: 'exhausted', group: n.group, round: n.round, at, detail: { round: n.round, attempt: n.attempt, job: n.job } })
        break
    }
  }
  if (routes.length > 0) {
    engine.on('roundEnd', onRoundEnd)
    engine.on('notice', onNotice)
    logger.info({ destinations: routes.map((r) => ({ url: r.to.where, events: [...r.events] })) }, 'alerts on')
  }

  return {
    pending: () => routes.reduce((n, r) => n + r.to.pending, 0),
    async close (graceMs = CLOSE_GRACE_MS) {
      engine.off('roundEnd', onRoundEnd)
      engine.off('notice', onNotice)
      await Promise.all(routes.map(async (r) => await r.to.close(graceMs)))
    }
  }
}
