import type { ScenarioResult } from '../lib/report.js'
import type { Options } from './common.js'
export async function heartbeat (_o: Options): Promise<ScenarioResult> {
  return { scenario: 'heartbeat', text: 'not yet', data: {} }
}
