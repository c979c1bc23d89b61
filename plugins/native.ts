// Native addons inside the single executable (scripts/build-binary.ts, docs/deploy.md). Node's
// single executable applications run one script and load no files beside it, so the binary
// carries each addon (the µWS server, the SQLite driver) as an asset; here it is written to a
// private temporary directory (mode 0700, under TMPDIR), loaded with process.dlopen, and the file
// removed at once (a loaded library stays mapped). Outside the binary every function here is a
// no-op and the packages find their addons in node_modules as usual.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

interface Sea { isSea: () => boolean, getAsset: (key: string) => ArrayBuffer }

let seaModule: Sea | null | undefined

function sea (): Sea | null {
  if (seaModule === undefined) {
    // node:sea exists from Node 20.12; process.getBuiltinModule from 20.16 (the binary has both)
    const get = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule
    const m = typeof get === 'function' ? get('node:sea') as Sea | undefined : undefined
    seaModule = m !== undefined && m.isSea() ? m : null
  }
  return seaModule
}

/** True inside the single executable. */
export function inSingleExecutable (): boolean {
  return sea() !== null
}

/** The bytes of asset `name` carried by the single executable; null outside it or when absent. */
export function seaAsset (name: string): Buffer | null {
  const s = sea()
  if (s === null) return null
  try {
    return Buffer.from(s.getAsset(name))
  } catch {
    return null
  }
}

/** The dashboard's files carried by the single executable (name → text), or null outside it. */
export function seaDashboard (): Map<string, string> | null {
  const manifest = seaAsset('dashboard.json')
  if (manifest === null) return null
  const out = new Map<string, string>()
  for (const name of JSON.parse(manifest.toString()) as string[]) {
    const body = seaAsset(`dashboard/${name}`)
    if (body !== null) out.set(name, body.toString('utf8'))
  }
  return out
}

const loaded = new Map<string, unknown>()

/**
 * The addon carried as asset `name`, loaded (once per process); null outside the single
 * executable or when it does not carry that asset. Throws when the addon is carried but does not
 * load (another glibc, a TMPDIR mounted noexec): the message says which file and why.
 */
export function seaAddon (name: string): unknown {
  const cached = loaded.get(name)
  if (cached !== undefined) return cached
  const s = sea()
  if (s === null) return null
  let bytes: ArrayBuffer
  try {
    bytes = s.getAsset(name)
  } catch {
    return null // this binary was built without it
  }
  const dir = mkdtempSync(join(tmpdir(), 'roundgate-')) // mode 0700: nobody else can swap the file
  const file = join(dir, name)
  try {
    writeFileSync(file, new Uint8Array(bytes), { mode: 0o500 })
    const mod = { exports: {} as unknown }
    try {
      process.dlopen(mod, file)
    } catch (err) {
      throw new Error(`cannot load the native addon ${name} from ${dir} (set TMPDIR to a directory that allows executing): ${(err as Error).message}`, { cause: err })
    }
    loaded.set(name, mod.exports)
    return mod.exports
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * For better-sqlite3: `new Database(file, { nativeBinding: sqliteNativeBinding() })`. The carried
 * addon inside the single executable; undefined elsewhere (better-sqlite3 finds its own).
 */
export function sqliteNativeBinding (): string | undefined {
  // better-sqlite3 12 takes a loaded addon object as nativeBinding too; its types say only string
  return (seaAddon('better_sqlite3.node') ?? undefined) as string | undefined
}
