// Real Chromium for the dashboard tests: Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser), headless, with the flags this closed network needs and a fresh
// profile per launch. A browser that cannot start is an error: the test fails, it never skips.
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
/** screenshots of every run (gitignored) */
export const ARTIFACTS = join(ROOT, 'artifacts', 'dashboard')

const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

export interface Browser {
  context: BrowserContext
  /** a new page whose console errors, page errors and CSP violations are collected */
  page: () => Promise<Watched>
  close: () => Promise<void>
}

export interface Watched {
  page: Page
  /** console errors and uncaught exceptions, in order */
  errors: string[]
}

export async function launch (): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'rg-chromium-'))
  let context: BrowserContext
  try {
    // the profile folder goes through launchPersistentContext (playwright refuses --user-data-dir in args)
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1400, height: 1000 },
      timeout: 30000
    })
  } catch (err) {
    await rm(profile, { recursive: true, force: true })
    throw new Error(`Chromium (${CHROMIUM}) did not start: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  await mkdir(ARTIFACTS, { recursive: true })
  return {
    context,
    page: async () => {
      const page = await context.newPage()
      const errors: string[] = []
      page.on('console', (m: ConsoleMessage) => { if (m.type() === 'error') errors.push(m.text()) })
      page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`))
      return { page, errors }
    },
    close: async () => {
      await context.close()
      await rm(profile, { recursive: true, force: true })
    }
  }
}

/** Screenshot to artifacts/dashboard/<name>.png (returns the path). */
export async function snap (page: Page, name: string): Promise<string> {
  const path = join(ARTIFACTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}
