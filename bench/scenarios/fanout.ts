import type { ScenarioResult } from '../lib/report.js'
import type { Options } from './common.js'
export async function fanoutPeers (_o: Options): Promise<ScenarioResult> {
  return { scenario: 'fanout', text: 'not yet', data: {} }
}
