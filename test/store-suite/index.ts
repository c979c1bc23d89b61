// The abstract store suite (like aedes-persistence's abstract tests): every rule of PROTOCOL
// section 3 through the Store interface alone. Every implementation runs it:
// test/store-memory.test.ts and test/store-redis.test.ts. Real time, small millisecond configs,
// polling with a bounded helper; no assertion is about speed.
import type { Test } from 'tap'
import type { GroupConfig, OpResult, Store } from '../../plugins/scheduler/index.js'
import { groupAndTerminalTests } from './groups-terminals.js'
import { cfg, type MakeStore, type SuiteContext, type SuiteStoreOptions } from './helpers.js'
import { releaseTests } from './release.js'
import { retryAndJobTests } from './retries-jobs.js'
import { roundTests } from './rounds.js'
import { scheduleAndTimelineTests } from './schedule-timeline.js'

export { cfg, endings, releases, type MakeStore, type SuiteStoreOptions } from './helpers.js'

export function storeSuite (tap: Test, name: string, makeStore: MakeStore): void {
  /** One fresh store per test, cleaned up afterwards. */
  function test (title: string, fn: (t: Test, store: Store) => Promise<void>, opts: SuiteStoreOptions = {}): void {
    void tap.test(`${name}: ${title}`, async (t) => {
      const { store, cleanup } = await makeStore(opts)
      try {
        await fn(t, store)
      } finally {
        await cleanup()
      }
    })
  }

  async function ready (store: Store, g: string, ids: string[], role: 'small' | 'boss' = 'small'): Promise<OpResult[]> {
    const out: OpResult[] = []
    for (const id of ids) out.push(await store.ready(g, id, { role }))
    return out
  }

  /** A group with config `c`, already paused while terminals declare ready, then resumed. */
  async function pausedReady (store: Store, c: Partial<GroupConfig>, ids: string[]): Promise<OpResult> {
    await store.putGroup('g', cfg({ ...c, paused: true }))
    await ready(store, 'g', ids)
    return await store.ctl('g', { op: 'resume' })
  }

  const ctx: SuiteContext = { test, ready, pausedReady }
  groupAndTerminalTests(ctx)
  releaseTests(ctx)
  roundTests(ctx)
  retryAndJobTests(ctx)
  scheduleAndTimelineTests(ctx)
}
