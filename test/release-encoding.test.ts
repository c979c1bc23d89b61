// ActiveRelease: each participant's message is the PROTOCOL release JSON with its own role and
// shard, the same whichever way it is asked for (by position in the fan-out, or by clientId).
import t from 'tap'
import { ActiveRelease, type ReleaseRecord } from '../plugins/scheduler/index.js'

const record: ReleaseRecord = {
  group: 'g', round: 7, releasedAt: 1000, deadline: 61000,
  participants: ['s0', 's1', 's2', 'b0', 'b1'], bosses: ['b0', 'b1'], payload: { job: 'x', n: [1, 2] }
}

void t.test('by position and by id give the same message, with role and shard', async (t) => {
  const rel = new ActiveRelease(record)
  t.equal(rel.size, 5)
  record.participants.forEach((id, i) => {
    const byPos = JSON.parse(Buffer.concat(rel.partsAt(i)).toString())
    const byId = JSON.parse(Buffer.concat(rel.encodeParts(id) ?? []).toString())
    t.same(byPos, byId, id)
    t.same(JSON.parse(rel.encode(id) ?? 'null'), byId)
    const boss = id.startsWith('b')
    t.same(byId, { ...record, role: boss ? 'boss' : 'small', shard: { index: Number(id.slice(1)), count: boss ? 2 : 3 } })
  })
  t.equal(rel.encode('nobody'), null)
  t.notOk(rel.has('nobody'))
  t.ok(rel.has('b1'))
  t.same([...rel.ids()], record.participants)
})

void t.test('a record whose bosses are not the tail still gets the right shards', async (t) => {
  const rel = new ActiveRelease({ ...record, participants: ['b0', 's0', 'b1', 's1'], bosses: ['b0', 'b1'] })
  t.same(JSON.parse(Buffer.concat(rel.partsAt(0)).toString()).shard, { index: 0, count: 2 })
  t.same(JSON.parse(Buffer.concat(rel.partsAt(3)).toString()), JSON.parse(rel.encode('s1') ?? 'null'))
  t.same(JSON.parse(rel.encode('s1') ?? 'null').shard, { index: 1, count: 2 })
})
