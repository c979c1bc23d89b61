// A group's jobs (PROTOCOL section 10): the queue (highest priority first, then oldest), the job a
// round runs, and finished jobs kept with the round history. Changes are noted in `dirty` for the
// embedded store.
import { RgError } from '../../../errors.js'
import type { JobsQuery } from '../store.js'
import type { Job, JobState, RoundSummary } from '../types.js'

/** A job as kept: the public fields and its submission order. */
export interface StoredJob extends Job {
  seq: number
}

export class Jobs {
  /** every job kept, by id */
  private readonly byId = new Map<string, StoredJob>()
  /** queued jobs: priority descending, then submission order */
  private readonly queue: StoredJob[] = []
  /** finished jobs in the order they finished, for trimming */
  private readonly finished: StoredJob[] = []
  private seq = 0
  readonly dirty = new Set<string>()
  private readonly group: string

  constructor (group: string) {
    this.group = group
  }

  get queued (): number { return this.queue.length }

  get (id: string): StoredJob | undefined {
    return this.byId.get(id)
  }

  /** Submit, idempotent by id: the same id with the same payload answers the job kept. */
  submit (id: string, payload: unknown, priority: number, now: number, maxQueued: number): { job: StoredJob, created: boolean } {
    const old = this.byId.get(id)
    if (old !== undefined) {
      if (canonical(old.payload) !== canonical(payload)) {
        throw new RgError('duplicate', `job ${id} exists with another payload`)
      }
      return { job: old, created: false }
    }
    if (this.queue.length >= maxQueued) {
      throw new RgError('unavailable', `group ${this.group} already queues ${maxQueued} jobs`)
    }
    const job: StoredJob = {
      id, group: this.group, payload, priority, state: 'queued', submittedAt: now, startedAt: null,
      endedAt: null, attempts: 0, rounds: [], result: null, seq: ++this.seq
    }
    this.byId.set(id, job)
    this.queue.splice(this.insertAt(job), 0, job)
    this.dirty.add(id)
    return { job, created: true }
  }

  /** The job the next release takes, without taking it. */
  peek (): StoredJob | undefined {
    return this.queue[0]
  }

  /** A release takes the next queued job: it runs from now. */
  start (job: StoredJob, round: number, attempt: number, now: number): void {
    const i = this.queue.indexOf(job)
    if (i >= 0) this.queue.splice(i, 1)
    job.state = 'running'
    job.startedAt ??= now
    job.attempts = attempt
    job.rounds.push(round)
    this.dirty.add(job.id)
  }

  /** A running job's round ended: `state` null keeps it running (a retry is scheduled). */
  roundEnded (job: StoredJob, summary: RoundSummary, state: JobState | null, now: number, keep: number): void {
    job.result = summary
    this.dirty.add(job.id)
    if (state !== null) this.finish(job, state, now, keep)
  }

  /** Cancel a queued job (a running one is cancelled by aborting its round). */
  cancelQueued (job: StoredJob, now: number, keep: number): void {
    const i = this.queue.indexOf(job)
    if (i >= 0) this.queue.splice(i, 1)
    this.finish(job, 'cancelled', now, keep)
  }

  finish (job: StoredJob, state: JobState, now: number, keep: number): void {
    job.state = state
    job.endedAt = now
    this.finished.push(job)
    this.dirty.add(job.id)
    while (this.finished.length > keep) {
      const old = this.finished.shift() as StoredJob
      this.byId.delete(old.id)
      this.dirty.add(old.id)
    }
  }

  /** Newest first, optionally of one state, before a job (by id). */
  list (q: JobsQuery): Job[] {
    let below = Infinity
    if (q.before !== undefined) {
      const b = this.byId.get(q.before)
      if (b === undefined) throw new RgError('bad_request', `before: no job ${q.before} in group ${this.group}`)
      below = b.seq
    }
    const all = [...this.byId.values()].filter((j) => j.seq < below && (q.state === undefined || j.state === q.state))
    all.sort((a, b) => b.seq - a.seq)
    return all.slice(0, q.limit).map(publicJob)
  }

  /** Put a job back as it was stored (embedded store start-up). */
  restore (job: StoredJob): void {
    this.byId.set(job.id, job)
    this.seq = Math.max(this.seq, job.seq)
    if (job.state === 'queued') this.queue.splice(this.insertAt(job), 0, job)
    else if (job.state !== 'running') this.finished.push(job)
  }

  /** After restore(): finished jobs in the order they finished. */
  restoreDone (): void {
    this.finished.sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0) || a.seq - b.seq)
  }

  private insertAt (job: StoredJob): number {
    let lo = 0
    let hi = this.queue.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const q = this.queue[mid]
      if (q.priority > job.priority || (q.priority === job.priority && q.seq < job.seq)) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** The job as shown: a copy, so an event keeps the job as it was when it happened. */
export function publicJob (j: StoredJob): Job {
  const { seq: _seq, ...job } = j
  return { ...job, rounds: [...job.rounds] }
}

/** JSON with sorted keys: two payloads are the same job when they are the same JSON value. */
export function canonical (v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val === null || typeof val !== 'object' || Array.isArray(val)) return val
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(val).sort()) out[k] = (val as Record<string, unknown>)[k]
    return out
  }) ?? 'null'
}
