// The abstract bus suite: every Bus implementation (LocalBus in one process, RedisBus across
// processes) is held to the same contract — what one bus publishes reaches every other bus of
// the same group of processes once, in order, and never comes back to the publisher.
import type { Test } from 'tap'
import type { Bus, BusEvent } from '../plugins/scheduler/index.js'
import { sleep, waitFor } from './helpers/wait.js'

/** `join(n)` makes n buses of one cluster; `stranger()` one bus that is not part of it. */
export interface BusFactory {
  join: (n: number) => Bus[]
  stranger: () => Bus
}

const release: BusEvent = {
  type: 'released',
  release: { group: 'g', round: 7, attempt: 1, job: null, releasedAt: 1, startAt: 1, deadline: 2, participants: ['a', 'b'], bosses: [], payload: { x: [] } }
}

export function busSuite (t: Test, name: string, make: BusFactory): void {
  void t.test(`${name} bus: others get each event once and in order, the publisher never`, async (t) => {
    const buses = [...make.join(3), make.stranger()]
    const got: BusEvent[][] = buses.map(() => [])
    buses.forEach((b, i) => b.subscribe((ev) => got[i].push(ev)))
    for (const b of buses) await b.open()
    t.teardown(async () => { for (const b of buses) await b.close() })

    buses[0].publish(release)
    buses[1].publish({ type: 'kicked', group: 'g', clientId: 'a' })
    buses[1].publish({ type: 'deleted', group: 'g', round: 7 })
    await waitFor(() => got[2].length >= 3 && got[0].length >= 2 && got[1].length >= 1, 3000, 'every event delivered')
    await sleep(100) // room for a wrong echo or a repeat to show
    t.strictSame(got[0].map((e) => e.type), ['kicked', 'deleted'], 'bus 0 hears bus 1, not itself')
    t.strictSame(got[1].map((e) => e.type), ['released'], 'bus 1 hears bus 0, not itself')
    t.strictSame(got[2].map((e) => e.type), ['released', 'kicked', 'deleted'], 'a bystander hears all, in order')
    t.strictSame(got[2][0], release, 'the event arrives whole')
    t.strictSame(got[3], [], 'a bus of another cluster hears nothing')
  })

  void t.test(`${name} bus: a closed bus hears nothing more and publishing on it does not throw`, async (t) => {
    const [a, b] = make.join(2)
    const got: BusEvent[] = []
    b.subscribe((ev) => got.push(ev))
    await a.open()
    await b.open()
    await b.close()
    a.publish(release)
    await sleep(100)
    t.strictSame(got, [], 'closed: nothing delivered')
    t.doesNotThrow(() => { b.publish(release) }, 'publish after close is a no-op')
    await a.close()
  })
}
