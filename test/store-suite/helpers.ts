// Shared pieces of the abstract store suite: configs, polling, event extraction, observation.
import type { Test } from 'tap'
import {
  DEFAULT_GROUP_CONFIG, type GroupConfig, mergeConfig, type OpResult, type ReleaseRecord, type RoundSummary, type Store, type StoreEvent
} from '../../plugins/scheduler/index.js'

export interface SuiteStoreOptions {
  maxTerminalsPerGroup?: number
  historyLimit?: number
  maxQueuedJobs?: number
}

export type MakeStore = (opts: SuiteStoreOptions) => Promise<{ store: Store, cleanup: () => Promise<void> }>

export function cfg (patch: Partial<GroupConfig> = {}): GroupConfig {
  return mergeConfig(DEFAULT_GROUP_CONFIG, patch)
}

export { sleep, waitFor as until } from '../helpers/wait.js'

export function releases (res: OpResult | OpResult[]): ReleaseRecord[] {
  const all = Array.isArray(res) ? res : [res]
  return all.flatMap((r) => r.events.filter((e): e is Extract<StoreEvent, { type: 'released' }> => e.type === 'released').map((e) => e.release))
}

export function endings (res: OpResult | OpResult[]): RoundSummary[] {
  const all = Array.isArray(res) ? res : [res]
  return all.flatMap((r) => r.events.filter((e): e is Extract<StoreEvent, { type: 'ended' }> => e.type === 'ended').map((e) => e.summary))
}

/** Everything a caller can observe about a group (minus times), to prove a refusal changed nothing. */
export async function observe (store: Store, g: string): Promise<unknown> {
  const snap = await store.getGroup(g)
  if (snap === null) return null
  const terms = (await store.terminals(g)).map((v) => ({ ...v, lastSeen: 0 })).sort((a, b) => a.clientId.localeCompare(b.clientId))
  return { snap: { ...snap, state: { ...snap.state, updatedAt: 0 } }, terms, rounds: await store.rounds(g, { limit: 10 }) }
}

export type SuiteTest = (title: string, fn: (t: Test, store: Store) => Promise<void>, opts?: SuiteStoreOptions) => void

export interface SuiteContext {
  test: SuiteTest
  ready: (store: Store, g: string, ids: string[], role?: 'small' | 'boss') => Promise<OpResult[]>
  /** A group with config `c`, already paused while terminals declare ready, then resumed. */
  pausedReady: (store: Store, c: Partial<GroupConfig>, ids: string[]) => Promise<OpResult>
}
