// Lua scripts defined once with their SHA1, and the one helper that runs them: EVALSHA, and on
// NOSCRIPT (a restarted or flushed Redis forgot its script cache) EVAL, which also caches it again.
// Script errors of the form "RG <code> <message>" become RgError; anything else (connection lost,
// timeouts, LOADING, ...) becomes `unavailable`.
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import { ERROR_CODES, RgError, type ErrorCode } from '../../errors.js'

export class LuaScript {
  readonly source: string
  readonly sha: string

  constructor (source: string) {
    this.source = source
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

const RG_ERROR = /^RG ([a-z_]+) (.*?)(?: script: [0-9a-f]+, on @user_script:\d+\.)?$/s

export function scriptError (err: unknown): RgError {
  if (err instanceof RgError) return err
  const msg = err instanceof Error ? err.message : String(err)
  const m = RG_ERROR.exec(msg)
  if (m !== null && m[1] in ERROR_CODES) return new RgError(m[1] as ErrorCode, m[2])
  return new RgError('unavailable', `the state store is unavailable: ${msg}`)
}

function isNoScript (err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT')
}

/** Run `script` with EVALSHA, falling back to EVAL once when Redis does not know it. */
export async function runScript (redis: Redis, script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
  try {
    try {
      return await redis.evalsha(script.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!isNoScript(err)) throw err
      return await redis.eval(script.source, keys.length, ...keys, ...args)
    }
  } catch (err) {
    throw scriptError(err)
  }
}
