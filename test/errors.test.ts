// The one error catalogue, README's table of codes and PROTOCOL's list say the same thing.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ERROR_CODES, RgError, toRgError } from '../plugins/errors.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

function readmeTable (): Map<string, number> {
  const text = readFileSync(`${root}README.md`, 'utf8')
  const section = text.slice(text.indexOf('## Error codes'))
  const rows = new Map<string, number>()
  for (const m of section.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)) rows.set(m[1], Number(m[2]))
  return rows
}

void t.test('README lists exactly the catalogue, with the same HTTP statuses', async (t) => {
  const rows = readmeTable()
  t.same([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort())
  for (const [code, def] of Object.entries(ERROR_CODES)) t.equal(rows.get(code), def.status, code)
})

const protocolPath = `${root}../shared/PROTOCOL.md`
const protocol = existsSync(protocolPath) ? readFileSync(protocolPath, 'utf8') : null

void t.test('every code of PROTOCOL section 4 is in the catalogue', { skip: protocol === null ? 'shared/PROTOCOL.md is not beside this checkout' : false }, async (t) => {
  const text = protocol ?? ''
  const line = text.slice(text.indexOf('Error codes (MQTT and HTTP alike)'))
  const codes = [...line.slice(0, line.indexOf('\n\n')).matchAll(/`([a-z_]+)`/g)].map((m) => m[1])
  t.ok(codes.length >= 11, `PROTOCOL lists its codes (${codes.length} found)`)
  for (const c of codes) t.ok(c in ERROR_CODES, c)
})

void t.test('RgError carries code, status and a JSON form; foreign errors become unavailable', async (t) => {
  const e = new RgError('stale_round', 'round 3 is over')
  t.equal(e.status, 409)
  t.same(e.toJSON(), { code: 'stale_round', message: 'round 3 is over' })
  t.equal(new RgError('forbidden').message, ERROR_CODES.forbidden.message)
  t.equal(toRgError(new Error('socket closed')).code, 'unavailable')
  t.equal(toRgError(e), e)
})
