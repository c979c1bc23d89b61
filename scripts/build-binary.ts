// `npm run build:binary`: one executable file, dist/roundgate-linux-x64, that runs every command of
// the CLI on a machine without Node.js or node_modules. Node 20's single executable applications
// run one CommonJS script, so:
//   1. esbuild bundles the CLI (dist/broker/cli.js, compiled by tsc) into dist/sea/roundgate.cjs;
//      the import of uWebSockets.js becomes a small module that loads the µWS addon from the
//      binary's assets (plugins/native.ts), its JavaScript fallback bundled behind it;
//   2. `node --experimental-sea-config` turns the script and the assets (uws.node and
//      better_sqlite3.node) into a blob;
//   3. a copy of this node binary gets the blob injected with postject.
// docs/deploy.md says what the binary needs from the machine (Linux x64, glibc, libstdc++).
import { build, type Plugin } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const require = createRequire(import.meta.url)
/** The sentinel Node's own binary carries for the SEA blob (docs: single-executable-applications). */
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'

export interface BinaryBuild {
  file: string
  bytes: number
  seconds: number
  /** the newest glibc / libstdc++ symbol versions the binary and its addons ask for */
  needs: { glibc: string, glibcxx: string | null }
  assets: string[]
}

function packageDir (name: string): string {
  return dirname(require.resolve(`${name}/package.json`))
}

/** The native addons the binary carries, by asset name. */
function addons (): Record<string, string> {
  const uws = join(packageDir('uWebSockets.js'), 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`)
  const sqlite = join(packageDir('better-sqlite3'), 'build', 'Release', 'better_sqlite3.node')
  for (const f of [uws, sqlite]) if (!existsSync(f)) throw new Error(`native addon missing: ${f} (run npm ci)`)
  return { 'uws.node': uws, 'better_sqlite3.node': sqlite }
}

/**
 * The built dashboard (dist/dashboard/) as assets `dashboard/<file>`, with `dashboard.json` listing
 * them: the gateway serves them from the binary (gateway/static.ts, plugins/native.ts).
 */
function dashboardAssets (work: string): Record<string, string> {
  const dir = join(ROOT, 'dist', 'dashboard')
  if (!existsSync(join(dir, 'index.html'))) throw new Error(`the dashboard is not built in ${dir} (run npm run build)`)
  const names = readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile()).sort()
  const out: Record<string, string> = {}
  for (const n of names) out[`dashboard/${n}`] = join(dir, n)
  const manifest = join(work, 'dashboard.json')
  writeFileSync(manifest, JSON.stringify(names))
  out['dashboard.json'] = manifest
  return out
}

/** uWebSockets.js from the binary's asset, falling back to the package's JavaScript implementation. */
function uwsFromAsset (): Plugin {
  const native = join(ROOT, 'dist', 'plugins', 'native.js')
  return {
    name: 'uws-from-sea-asset',
    setup (b) {
      b.onResolve({ filter: /^uWebSockets\.js$/ }, () => ({ path: 'uWebSockets.js', namespace: 'roundgate-sea' }))
      b.onLoad({ filter: /.*/, namespace: 'roundgate-sea' }, () => ({
        resolveDir: ROOT,
        loader: 'js',
        contents: `
const { seaAddon } = require(${JSON.stringify(native)})
let uws = null
try {
  uws = seaAddon('uws.node')
} catch (err) {
  process.emitWarning(err instanceof Error ? err.message : String(err))
}
module.exports = uws !== null ? uws : require('uWebSockets.js/dist/index.js')
`
      }))
    }
  }
}

/**
 * ws tries `require('bufferutil')` and `require('utf-8-validate')` inside try/catch and runs its
 * own JavaScript without them; in the binary they are modules that say they are absent (a require
 * left to run time would make Node warn that the binary loads built-in modules only).
 */
function absent (names: string[]): Plugin {
  const filter = new RegExp(`^(${names.map((n) => n.replace(/[-.]/g, '\\$&')).join('|')})$`)
  return {
    name: 'absent-optional-addons',
    setup (b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'roundgate-absent' }))
      b.onLoad({ filter: /.*/, namespace: 'roundgate-absent' }, (args) => ({
        loader: 'js',
        contents: `throw Object.assign(new Error(${JSON.stringify(`${args.path} is not part of the single binary`)}), { code: 'MODULE_NOT_FOUND' })`
      }))
    }
  }
}

/** Highest GLIBC_2.x and GLIBCXX_3.4.x versions named in these ELF files. */
function needs (files: string[]): BinaryBuild['needs'] {
  let glibc = 0
  let glibcxx = -1
  for (const f of files) {
    const text = readFileSync(f).toString('latin1')
    for (const m of text.matchAll(/GLIBC_2\.(\d+)/g)) glibc = Math.max(glibc, Number(m[1]))
    for (const m of text.matchAll(/GLIBCXX_3\.4\.(\d+)/g)) glibcxx = Math.max(glibcxx, Number(m[1]))
  }
  return { glibc: `2.${glibc}`, glibcxx: glibcxx >= 0 ? `3.4.${glibcxx}` : null }
}

/**
 * postject's ELF library prints "Can't find string offset for section name" warnings for sections
 * of Node's binary it does not need (harmless, as Node's docs say); it runs in a child process so
 * that only its other output is shown.
 */
async function injectQuietly (file: string, blob: string): Promise<void> {
  const script = `require(${JSON.stringify(require.resolve('postject'))}).inject(${JSON.stringify(file)}, 'NODE_SEA_BLOB', ` +
    `require('node:fs').readFileSync(${JSON.stringify(blob)}), { sentinelFuse: ${JSON.stringify(FUSE)} })` +
    '.catch((err) => { console.error(err.message); process.exitCode = 1 })'
  const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  const noise = /^warning: Can't find string offset for section name/
  const said = `${res.stdout}\n${res.stderr}`.split('\n').filter((l) => l.trim() !== '' && !noise.test(l))
  if (res.status !== 0) throw new Error(`postject failed (${res.status ?? res.signal}): ${said.join('\n')}`)
  for (const l of said) process.stderr.write(`postject: ${l}\n`)
}

export async function buildBinary (out = join(ROOT, 'dist', `roundgate-${process.platform}-${process.arch}`)): Promise<BinaryBuild> {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the binary is built for Linux x64 only, not ${process.platform} ${process.arch}`)
  if (!existsSync(join(ROOT, 'dist', 'broker', 'cli.js'))) throw new Error('dist/broker/cli.js is missing: run `npx tsc -p tsconfig.json` first')
  const started = process.hrtime.bigint()
  const work = join(ROOT, 'dist', 'sea')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }

  const script = join(work, 'roundgate.cjs')
  const result = await build({
    stdin: {
      contents: `import { main } from './dist/broker/cli.js'
main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\\n')
  process.exit(1)
})`,
      resolveDir: ROOT,
      sourcefile: 'roundgate-binary.js',
      loader: 'js'
    },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: script,
    // import.meta.url as CommonJS has it (only broker/version.ts reads it, and not in the binary)
    banner: { js: 'const __importMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
    define: { __ROUNDGATE_VERSION__: JSON.stringify(pkg.version), 'import.meta.url': '__importMetaUrl' },
    plugins: [uwsFromAsset(), absent(['bufferutil', 'utf-8-validate'])],
    logLevel: 'silent',
    legalComments: 'none'
  })
  for (const w of result.warnings) process.stderr.write(`esbuild: ${w.text} (${w.location?.file ?? '?'}:${w.location?.line ?? '?'})\n`)

  const assets = { ...addons(), ...dashboardAssets(work) }
  const blob = join(work, 'roundgate.blob')
  const config = join(work, 'sea-config.json')
  writeFileSync(config, JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, assets }, null, 2))
  const sea = spawnSync(process.execPath, ['--experimental-sea-config', config], { encoding: 'utf8' })
  if (sea.status !== 0) throw new Error(`node --experimental-sea-config failed: ${sea.stderr}`)


  rmSync(out, { force: true })
  copyFileSync(process.execPath, out)
  chmodSync(out, 0o755)
  await injectQuietly(out, blob)
  return {
    file: out,
    bytes: statSync(out).size,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    needs: needs([process.execPath, ...Object.values(assets)]),
    assets: Object.keys(assets)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildBinary().then((b) => {
    const mib = (b.bytes / 1024 / 1024).toFixed(1)
    process.stdout.write(`${b.file}: ${mib} MiB in ${b.seconds.toFixed(1)} s; carries ${b.assets.join(', ')}; ` +
      `needs Linux x64 with glibc >= ${b.needs.glibc}${b.needs.glibcxx !== null ? ` and libstdc++ (GLIBCXX_${b.needs.glibcxx})` : ''}\n`)
  }, (err) => {
    process.stderr.write(`build:binary: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
