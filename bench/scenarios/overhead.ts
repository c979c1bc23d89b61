import type { ScenarioResult } from '../lib/report.js'
import type { Options } from './common.js'
export async function overhead (_o: Options): Promise<ScenarioResult> {
  return { scenario: 'overhead', text: 'not yet', data: {} }
}
