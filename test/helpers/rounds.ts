// A small fleet of MQTT terminals for round tests: one group, real clients, helpers to act.
import type { MqttClient } from 'mqtt'
import type { Test } from 'tap'
import type { GroupConfig } from '../../plugins/scheduler/index.js'
import { Inbox, connect, send, sleep, startBroker, terminal, waitFor, type Received, type TestBroker } from './broker.js'
import type { Settings } from '../../broker/settings.js'

export interface Term {
  id: string
  c: MqttClient
  inbox: Inbox
  hb: (body?: unknown) => Promise<void>
  ready: (body?: unknown) => Promise<void>
  done: (round: number, extra?: Record<string, unknown>) => Promise<void>
  leave: () => Promise<void>
  /** the next release this terminal receives (already received ones count) */
  release: (ms?: number) => Promise<Received>
  /** the next error answered to this terminal */
  error: (ms?: number) => Promise<Received>
}

export interface Fleet {
  broker: TestBroker
  group: string
  term: (id: string) => Promise<Term>
  /** a watcher subscribed to state and rounds of the group */
  watch: () => Promise<Inbox>
  ctl: (body: unknown, admin?: string) => Promise<Received>
  state: () => ReturnType<TestBroker['server']['engine']['state']>
  /** who takes part in the executing round, sorted (the terminals view, as GET /terminals shows it) */
  participating: () => Promise<string[]>
  waitPhase: (phase: string, ms?: number) => Promise<void>
}

export async function fleet (t: Test, config: Partial<GroupConfig>, settings: Partial<Settings> = {}, group = 'g'): Promise<Fleet> {
  const broker = await startBroker({ groups: { [group]: config }, ...settings })
  const clients: MqttClient[] = []
  t.teardown(async () => {
    await Promise.all(clients.map(async (c) => await c.endAsync(true).catch(() => {})))
    await broker.close()
  })
  const base = `rg/${group}`
  const term = async (id: string): Promise<Term> => {
    const { c, inbox } = await terminal(broker.url, group, id)
    clients.push(c)
    return {
      id,
      c,
      inbox,
      hb: async (body = {}) => await send(c, `${base}/hb/${id}`, body),
      ready: async (body = {}) => await send(c, `${base}/ready/${id}`, body),
      done: async (round, extra = {}) => await send(c, `${base}/done/${id}`, { round, ...extra }),
      leave: async () => await send(c, `${base}/leave/${id}`, {}),
      release: async (ms = 3000) => await inbox.next(`${base}/release`, ms),
      error: async (ms = 3000) => await inbox.next(`${base}/error/${id}`, ms)
    }
  }
  const watch = async (): Promise<Inbox> => {
    const c = await connect(broker.url, `watch-${Math.random().toString(36).slice(2)}`)
    clients.push(c)
    const inbox = new Inbox(c)
    await c.subscribeAsync([`${base}/state`, `${base}/rounds`], { qos: 1 })
    return inbox
  }
  let admin: { c: MqttClient, inbox: Inbox } | null = null
  const ctl = async (body: unknown, id = 'admin'): Promise<Received> => {
    if (admin === null) {
      const c = await connect(broker.url, id)
      clients.push(c)
      const inbox = new Inbox(c)
      await c.subscribeAsync(`${base}/ctl/result/${id}`, { qos: 1 })
      admin = { c, inbox }
    }
    const from = admin.inbox.messages.length
    await send(admin.c, `${base}/ctl`, body)
    return await admin.inbox.next(`${base}/ctl/result/${id}`, 3000, from)
  }
  const engine = broker.server.engine
  return {
    broker,
    group,
    term,
    watch,
    ctl,
    state: async () => await engine.state(group),
    participating: async () => (await engine.terminals(group)).filter((v) => v.participating).map((v) => v.clientId).sort(),
    waitPhase: async (phase, ms = 3000) => {
      await waitFor(async () => (await engine.state(group)).phase === phase, ms, `phase ${phase}`)
    }
  }
}

/** Terminals that are all ready (in the given order), each awaited before the next. */
export async function readyAll (terms: Term[], body: unknown = {}): Promise<void> {
  for (const x of terms) await x.ready(body)
}

/** Assert that no message arrives on `topic` for `ms`. */
export async function silent (inbox: Inbox, topic: string, ms = 300): Promise<boolean> {
  const before = inbox.on(topic).length
  await sleep(ms)
  return inbox.on(topic).length === before
}
