// What a participant checks in each message it receives during a measured round, after the round
// (parsing is kept out of the timed fan-out: the generators share the broker's two cores).
//
// A release (PROTOCOL section 4) must parse, name the group and the round, carry `participants`
// and the participant's own `role` and `shard`. PROTOCOL 1.1 makes `participants` a count and adds
// `attempt`, `job`, `startAt` and `serverTime`; the 1.0 list is still accepted (the participant
// must be in it) so the harness runs against a build from before 1.1, and each message is
// counted by format so the report says which one it measured. A plain fan-out message (the MQTT
// rivals) must be exactly the bytes that were published.

export type Expect =
  | { kind: 'plain', bytes: number }
  | { kind: 'release', group: string, n: number, round: number | null }

export interface Checked {
  /** null when the message is what it should be, else the first problem found */
  problem: string | null
  format: 'count' | 'list' | 'plain' | 'unknown'
  /** startAt and serverTime, when the message carries them (PROTOCOL 1.1) */
  startAt: number | null
  serverTime: number | null
  round: number | null
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)

export function checkMessage (body: Buffer, clientId: string, expect: Expect): Checked {
  const out: Checked = { problem: null, format: 'unknown', startAt: null, serverTime: null, round: null }
  if (expect.kind === 'plain') {
    out.format = 'plain'
    if (body.length !== expect.bytes) out.problem = `${body.length} bytes, published ${expect.bytes}`
    return out
  }
  let m: any
  try {
    m = JSON.parse(body.toString('utf8'))
  } catch {
    out.problem = 'not JSON'
    return out
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) { out.problem = 'not a JSON object'; return out }
  if (isInt(m.round)) out.round = m.round
  if (typeof m.startAt === 'number') out.startAt = m.startAt
  if (typeof m.serverTime === 'number') out.serverTime = m.serverTime
  const p = m.participants
  if (isInt(p)) out.format = 'count'
  else if (Array.isArray(p)) out.format = 'list'
  const problem = (): string | null => {
    if (m.group !== expect.group) return `group ${JSON.stringify(m.group)}, expected ${expect.group}`
    if (!isInt(m.round) || m.round < 1) return `round ${JSON.stringify(m.round)}`
    if (expect.round !== null && m.round !== expect.round) return `round ${m.round}, expected ${expect.round}`
    if (out.format === 'count') {
      if (p !== expect.n) return `participants ${p}, expected ${expect.n}`
      // 1.1 brings these together with the count
      for (const k of ['attempt', 'releasedAt', 'startAt', 'serverTime', 'deadline']) if (!isInt(m[k])) return `${k} ${JSON.stringify(m[k])} (1.1 release)`
      if (!('job' in m)) return 'no job field (1.1 release)'
    } else if (out.format === 'list') {
      if (p.length !== expect.n) return `${p.length} participants listed, expected ${expect.n}`
      if (!p.includes(clientId)) return `${clientId} not among the participants listed`
    } else {
      return `participants ${JSON.stringify(p)?.slice(0, 40)}`
    }
    if (m.role !== 'small' && m.role !== 'boss') return `role ${JSON.stringify(m.role)}`
    const s = m.shard
    if (s === null || typeof s !== 'object' || !isInt(s.index) || !isInt(s.count) || s.index < 0 || s.index >= s.count) return `shard ${JSON.stringify(s)}`
    return null
  }
  out.problem = problem()
  return out
}
