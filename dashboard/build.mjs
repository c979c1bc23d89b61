// Build the dashboard into dist/dashboard/ (run by `npm run build` and `npm ci`'s prepare):
// esbuild bundles src/main.ts with the mqtt browser bundle and uplot into one content-hashed
// script and one stylesheet, and index.html is written naming them. No CDN, no inline script or
// style: the gateway serves these files with a strict Content-Security-Policy (gateway/static.ts).
import { build } from 'esbuild'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import process from 'node:process'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const outdir = join(here, '..', 'dist', 'dashboard')

rmSync(outdir, { recursive: true, force: true })
mkdirSync(outdir, { recursive: true })

const result = await build({
  entryPoints: { app: join(here, 'src', 'main.ts') },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  entryNames: '[name]-[hash]',
  outdir,
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning'
})

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p))
const script = outputs.find((n) => /^app-[A-Z0-9]+\.js$/.test(n))
const style = outputs.find((n) => /^app-[A-Z0-9]+\.css$/.test(n))
if (script === undefined || style === undefined) {
  throw new Error(`dashboard build: expected app-HASH.js and app-HASH.css, got ${outputs.join(', ')}`)
}
const html = readFileSync(join(here, 'index.html'), 'utf8')
  .replace('{{script}}', `./${script}`)
  .replace('{{style}}', `./${style}`)
writeFileSync(join(outdir, 'index.html'), html)
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
process.stdout.write(`dashboard: ${outputs.length + 1} files, ${Math.round(bytes / 1024)} KiB in dist/dashboard/\n`)
