// ActiveRelease: each participant's message is the PROTOCOL 1.1 release JSON (participants a
// count, serverTime from the broker's clock) with its own role and shard, the same whichever way it
// is asked for (by position in the fan-out, or by clientId).
import t from 'tap'
import { ActiveRelease, type ReleaseRecord } from '../plugins/scheduler/index.js'

const record: ReleaseRecord = {
  group: 'g', round: 7, attempt: 2, job: 'frame-1', releasedAt: 1000, startAt: 1050, deadline: 61050,
  participants: ['s0', 's1', 's2', 'b0', 'b1'], bosses: ['b0', 'b1'], payload: { job: 'x', n: [1, 2] }
}
const clock = (): number => 123456

/** The message PROTOCOL section 4 promises the participant, field by field and in order. */
function expected (id: string): Record<string, unknown> {
  const boss = id.startsWith('b')
  return {
    group: 'g', round: 7, attempt: 2, job: 'frame-1', releasedAt: 1000, startAt: 1050, deadline: 61050, serverTime: 123456,
    participants: 5, bosses: ['b0', 'b1'], payload: { job: 'x', n: [1, 2] },
    role: boss ? 'boss' : 'small', shard: { index: Number(id.slice(1)), count: boss ? 2 : 3 }
  }
}

void t.test('by position and by id give the same message, with role and shard', async (t) => {
  const rel = new ActiveRelease(record, clock)
  t.equal(rel.size, 5)
  record.participants.forEach((id, i) => {
    const byPos = JSON.parse(Buffer.concat(rel.partsAt(i)).toString())
    const byId = JSON.parse(Buffer.concat(rel.encodeParts(id) ?? []).toString())
    t.same(byPos, byId, id)
    t.same(JSON.parse(rel.encode(id) ?? 'null'), byId)
    t.strictSame(byId, expected(id))
    t.strictSame(Object.keys(byId), Object.keys(expected(id)), 'fields in PROTOCOL order')
  })
  t.equal(rel.encode('nobody'), null)
  t.notOk(rel.has('nobody'))
  t.ok(rel.has('b1'))
  t.same([...rel.ids()], record.participants)
})

void t.test('a record whose bosses are not the tail still gets the right shards', async (t) => {
  // the fixed clock: both copies carry the same serverTime, however far apart they are written
  const rel = new ActiveRelease({ ...record, participants: ['b0', 's0', 'b1', 's1'], bosses: ['b0', 'b1'] }, clock)
  t.same(JSON.parse(Buffer.concat(rel.partsAt(0)).toString()).shard, { index: 0, count: 2 })
  t.same(JSON.parse(Buffer.concat(rel.partsAt(3)).toString()), JSON.parse(rel.encode('s1') ?? 'null'))
  t.same(JSON.parse(rel.encode('s1') ?? 'null').shard, { index: 1, count: 2 })
})

void t.test('a release stays a few hundred bytes however many participate; serverTime follows the clock', async (t) => {
  const ids = Array.from({ length: 10000 }, (_, i) => `terminal-${i}`)
  let now = 5000
  const rel = new ActiveRelease({ ...record, participants: ids, bosses: [] }, () => now)
  const first = rel.encode('terminal-9999') ?? ''
  t.ok(Buffer.byteLength(first) < 400, `${Buffer.byteLength(first)} bytes for a 10,000-participant round`)
  t.equal(JSON.parse(first).participants, 10000)
  t.equal(JSON.parse(first).serverTime, 5000)
  now = 9000
  await new Promise((resolve) => setTimeout(resolve, 2)) // the stamp is re-read after half a millisecond
  t.equal(JSON.parse(rel.encode('terminal-0') ?? '').serverTime, 9000, 'a later copy carries a later serverTime')
})
