// One alert destination (PROTOCOL section 9): a bounded queue and one sender. Alerts leave in the
// order they were raised, one at a time; a failed delivery (network error, timeout, a status that
// is not 2xx) is tried again after 1, 2, 4, 8, 16 and 32 seconds, so an alert is given up only
// after seven attempts spread over more than a minute. Raising an alert only queues it: nothing
// here ever waits inside a round's transition. A full queue drops its oldest alert.
import { createHmac } from 'node:crypto'
import type { Logger } from 'pino'

export type AlertOutcome = 'delivered' | 'retried' | 'failed' | 'dropped'

/** What the metrics plugin counts (roundgate_alert_deliveries_total{outcome}). */
export interface AlertObserver {
  alertDelivery (outcome: AlertOutcome): void
}

/** The JSON body of one alert, as POSTed. */
export interface AlertBody {
  event: string
  group: string
  round?: number
  at: number
  detail: unknown
}

export interface DestinationOptions {
  url: string
  secret?: string
  logger: Logger
  observer?: AlertObserver
  /** waits between attempts (ms); the default is the documented schedule */
  retryDelaysMs?: readonly number[]
  /** one attempt's time limit (ms) */
  timeoutMs?: number
  /** alerts waiting per destination; beyond it the oldest is dropped */
  queueLimit?: number
}

/** 7 attempts: at 0, 1, 3, 7, 15, 31 and 63 s after the first (plus each attempt's own time). */
export const RETRY_DELAYS_MS: readonly number[] = [1000, 2000, 4000, 8000, 16000, 32000]
export const ATTEMPT_TIMEOUT_MS = 10000
export const QUEUE_LIMIT = 1000

export function signature (body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}

export class Destination {
  readonly url: string
  /** where it goes, for log lines: the origin only (a webhook URL's path often holds a token) */
  readonly where: string
  private readonly opts: DestinationOptions
  private readonly log: Logger
  private readonly delays: readonly number[]
  private readonly queue: AlertBody[] = []
  private sending = false
  private closed = false
  /** the current failure streak: attempts failed in a row (0 while deliveries work) */
  private failures = 0
  /** alerts dropped since the queue last had room */
  private dropping = 0
  /** alerts whose delivery a shutdown cut short */
  private abandoned = 0
  private readonly stop = new AbortController()
  private idle: Promise<void> = Promise.resolve()

  constructor (opts: DestinationOptions) {
    this.opts = opts
    this.url = opts.url
    this.where = new URL(opts.url).origin
    this.log = opts.logger
    this.delays = opts.retryDelaysMs ?? RETRY_DELAYS_MS
  }

  /** Alerts waiting, the one being delivered included. */
  get pending (): number {
    return this.queue.length + (this.sending ? 1 : 0)
  }

  /** Queue an alert; returns at once. */
  push (alert: AlertBody): void {
    if (this.closed) return
    if (this.queue.length >= (this.opts.queueLimit ?? QUEUE_LIMIT)) {
      const old = this.queue.shift() as AlertBody
      this.opts.observer?.alertDelivery('dropped')
      if (this.dropping++ === 0) {
        this.log.warn({ url: this.where, event: old.event, group: old.group, round: old.round }, 'alert queue full: dropping the oldest alerts (logged again with the count when it has room)')
      }
    }
    this.queue.push(alert)
    if (!this.sending) {
      this.sending = true
      this.idle = this.drain().then(undefined, (err: unknown) => {
        this.sending = false
        this.log.error({ err, url: this.where }, 'the alert sender failed; alerts queued for this destination wait for the next one')
      })
    }
  }

  /**
   * Stop: alerts still queued get up to `graceMs` to go out (a shutdown right after a round timed
   * out still reports it), then the attempt in flight is abandoned and what is left is counted as
   * dropped, with one log line.
   */
  async close (graceMs = 0): Promise<void> {
    if (this.closed) return
    if (this.sending && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.idle, new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })])
      clearTimeout(timer)
    }
    this.closed = true
    this.stop.abort()
    await this.idle
    const left = this.queue.length + this.abandoned
    if (left > 0) {
      for (let i = 0; i < left; i++) this.opts.observer?.alertDelivery('dropped')
      this.log.warn({ url: this.where, alerts: left }, 'alerts not delivered at shutdown')
      this.queue.length = 0
    }
  }

  private async drain (): Promise<void> {
    while (!this.closed) {
      const alert = this.queue.shift()
      if (alert === undefined) break
      if (this.dropping > 0 && this.queue.length <= (this.opts.queueLimit ?? QUEUE_LIMIT) / 2) {
        this.log.warn({ url: this.where, dropped: this.dropping }, 'alert queue has room again')
        this.dropping = 0
      }
      await this.deliver(alert)
    }
    this.sending = false
  }

  /** Every attempt of one alert, until it is delivered, given up, or the destination closes. */
  private async deliver (alert: AlertBody): Promise<void> {
    const body = JSON.stringify(alert)
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'roundgate' }
    if (this.opts.secret !== undefined) headers['x-roundgate-signature'] = signature(body, this.opts.secret)
    for (let attempt = 0; ; attempt++) {
      const problem = await this.attempt(body, headers)
      if (problem === null) {
        this.opts.observer?.alertDelivery('delivered')
        if (this.failures > 0) this.log.info({ url: this.where, failedAttempts: this.failures }, 'alert deliveries work again')
        this.failures = 0
        return
      }
      if (this.closed) { this.abandoned++; return }
      if (this.failures++ === 0) {
        this.log.warn({ url: this.where, problem, event: alert.event, group: alert.group }, 'alert delivery failing; retrying with backoff (logged again when it works or an alert is given up)')
      }
      const wait = this.delays[attempt]
      if (wait === undefined) {
        this.opts.observer?.alertDelivery('failed')
        this.log.error({ url: this.where, problem, event: alert.event, group: alert.group, round: alert.round, attempts: attempt + 1 }, 'alert given up')
        return
      }
      this.opts.observer?.alertDelivery('retried')
      await this.sleep(wait)
      if (this.closed) { this.abandoned++; return }
    }
  }

  /** One POST: null when the receiver took it (2xx), else what went wrong. */
  private async attempt (body: string, headers: Record<string, string>): Promise<string | null> {
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs ?? ATTEMPT_TIMEOUT_MS), this.stop.signal])
      })
      await res.body?.cancel() // the answer's body is not read: free the connection
      return res.status >= 200 && res.status < 300 ? null : `HTTP ${res.status}`
    } catch (err) {
      const e = err as Error & { cause?: { code?: string, message?: string } }
      if (e.name === 'TimeoutError') return `no answer within ${this.opts.timeoutMs ?? ATTEMPT_TIMEOUT_MS} ms`
      return e.cause?.code ?? e.cause?.message ?? e.message
    }
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(timer); resolve() }
      const timer = setTimeout(() => { this.stop.signal.removeEventListener('abort', done); resolve() }, ms)
      timer.unref()
      this.stop.signal.addEventListener('abort', done, { once: true })
    })
  }
}
