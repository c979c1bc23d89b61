// Request and message rates (docs/security.md): scheduler messages over MQTT and HTTP requests,
// per clientId and per client address, each a number per second, with `rate-limiter-flexible`:
// in memory in one process, in Redis in cluster mode (the cluster's ioredis link), so every broker
// counts against the same budget. Over it: RgError `rate_limited` (HTTP 429, MQTT error topic).
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible'
import { RgError } from '../errors.js'
import { isLoopbackAddress } from './address.js'

export interface RateLimitOptions {
  perClientPerS: number
  perIpPerS: number
  /** loopback addresses (the operator's own machine, or a front proxy not trusted) are not limited */
  exemptLoopback: boolean
  /** cluster mode: share the counts through this Redis link */
  redis?: Redis
  /** first part of the Redis keys */
  prefix?: string
  logger: Logger
}


export class RateLimits {
  private readonly perClient: RateLimiterAbstract
  private readonly perIp: RateLimiterAbstract
  private readonly opts: RateLimitOptions
  private storeFailing = false

  constructor (opts: RateLimitOptions) {
    this.opts = opts
    const make = (points: number, name: string): RateLimiterAbstract => {
      const memory = new RateLimiterMemory({ points, duration: 1, keyPrefix: name })
      if (opts.redis === undefined) return memory
      // while Redis is unreachable each process limits on its own (the insurance limiter)
      return new RateLimiterRedis({
        storeClient: opts.redis,
        points,
        duration: 1,
        keyPrefix: `${opts.prefix ?? 'rg'}:rl:${name}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter: new RateLimiterMemory({ points, duration: 1, keyPrefix: `${name}-insurance` })
      })
    }
    this.perClient = make(opts.perClientPerS, 'client')
    this.perIp = make(opts.perIpPerS, 'ip')
  }

  /** Count one message or request; rejects with `rate_limited` when either budget is spent. */
  async consume (clientId: string | undefined, address: string | undefined): Promise<void> {
    const jobs: Array<Promise<unknown>> = []
    if (clientId !== undefined && clientId !== '') jobs.push(this.perClient.consume(clientId))
    if (address !== undefined && address !== '' && !(this.opts.exemptLoopback && isLoopbackAddress(address))) jobs.push(this.perIp.consume(address))
    if (jobs.length === 0) return
    const results = await Promise.allSettled(jobs)
    for (const r of results) {
      if (r.status === 'fulfilled') continue
      if (r.reason instanceof RateLimiterRes) {
        const s = Math.max(1, Math.ceil(r.reason.msBeforeNext / 1000))
        throw new RgError('rate_limited', `too many messages: retry in ${s} s`)
      }
      // the limiter's store failed (and its insurance too): let the message through, say so once
      if (!this.storeFailing) this.opts.logger.warn({ err: r.reason as Error }, 'rate limiter store failed; not limiting until it works')
      this.storeFailing = true
      return
    }
    this.storeFailing = false
  }
}
