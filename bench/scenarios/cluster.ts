import type { ScenarioResult } from '../lib/report.js'
import type { Options } from './common.js'
export async function cluster (_o: Options): Promise<ScenarioResult> {
  return { scenario: 'cluster', text: 'not yet', data: {} }
}
