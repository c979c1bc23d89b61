// The version, from package.json; the single binary (scripts/build-binary.ts) writes it in at build
// time, where there is no package.json beside the program.
import { readFileSync } from 'node:fs'

declare const __ROUNDGATE_VERSION__: string | undefined

export function version (): string {
  if (typeof __ROUNDGATE_VERSION__ === 'string') return __ROUNDGATE_VERSION__
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}
