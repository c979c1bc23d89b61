// The cluster-mode bus: what one process's transition caused (a release, a round's end, a kick, a
// deleted group) reaches every other roundgate process over Redis pub/sub. The publishing process
// has already handled its own event (the engine does, before it publishes): the release hot path
// never waits for Redis, and a process ignores its own messages coming back.
import { randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { Bus, BusEvent, BusHandler } from '../engine/bus.js'
import { quit, reconnect } from './link.js'

export interface RedisBusOptions {
  url: string
  /** first part of the channel name (default `rg`): the channel is `<prefix>:bus` */
  prefix?: string
  /** told about connection trouble and events that could not be sent or read */
  onError?: (err: Error) => void
}

interface Envelope { o: string, e: BusEvent }

export class RedisBus implements Bus {
  /** this process's id on the channel */
  private readonly origin = randomUUID()
  private readonly channel: string
  private readonly pub: Redis
  private readonly sub: Redis
  private readonly onError: (err: Error) => void
  private handlers: BusHandler[] = []
  private closed = false

  constructor (opts: RedisBusOptions) {
    this.channel = `${opts.prefix ?? 'rg'}:bus`
    this.onError = opts.onError ?? (() => {})
    const base: RedisOptions = { lazyConnect: true, retryStrategy: reconnect }
    // The publisher keeps its offline queue: an event decided just before Redis went away is
    // still delivered when it comes back (ioredis gives up after its retry limit and says so).
    this.pub = new Redis(opts.url, base)
    this.sub = new Redis(opts.url, base)
    this.pub.on('error', (err: Error) => this.onError(err))
    this.sub.on('error', (err: Error) => this.onError(err))
    this.sub.on('message', (channel: string, text: string) => this.receive(channel, text))
  }

  async open (): Promise<void> {
    await Promise.all([this.pub.connect(), this.sub.connect()])
    await this.sub.subscribe(this.channel)
  }

  publish (event: BusEvent): void {
    if (this.closed) return
    const env: Envelope = { o: this.origin, e: event }
    this.pub.publish(this.channel, JSON.stringify(env)).catch((err: Error) => {
      this.onError(new Error(`bus: a ${event.type} event was not sent to the other processes: ${err.message}`))
    })
  }

  subscribe (handler: BusHandler): void {
    this.handlers.push(handler)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.handlers = []
    await Promise.all([quit(this.sub), quit(this.pub)])
  }

  private receive (channel: string, text: string): void {
    if (channel !== this.channel) return
    let env: Envelope
    try {
      env = JSON.parse(text) as Envelope
    } catch (err) {
      this.onError(new Error(`bus: unreadable message: ${(err as Error).message}`))
      return
    }
    if (env.o === this.origin) return
    for (const h of this.handlers) h(env.e)
  }
}
