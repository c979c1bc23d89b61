import type { ScenarioResult } from '../lib/report.js'
import type { Options } from './common.js'
export async function memory (_o: Options): Promise<ScenarioResult> {
  return { scenario: 'memory', text: 'not yet', data: {} }
}
