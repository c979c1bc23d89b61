// `roundgate version`: the version, the Node.js running it, and which native parts loaded: the µWS
// HTTP server (native, or its slow JavaScript fallback) and the SQLite driver.
import type { Command } from 'commander'
import { inSingleExecutable, sqliteNativeBinding } from '../../plugins/native.js'
import { version } from '../version.js'

/** The SQLite version the driver runs, or why it does not load. */
async function sqlite (): Promise<string> {
  try {
    const { default: Database } = await import('better-sqlite3')
    const db = new Database(':memory:', { nativeBinding: sqliteNativeBinding() })
    const row = db.prepare('select sqlite_version() as v').get() as { v: string }
    db.close()
    return `${row.v} (better-sqlite3, native)`
  } catch (err) {
    return `unavailable: ${(err as Error).message.split('\n')[0]}`
  }
}

export async function versionText (): Promise<string> {
  const { uwsKind } = await import('../../gateway/index.js')
  return [
    `roundgate ${version()}`,
    `node ${process.version} (${process.platform} ${process.arch}, ABI ${process.versions.modules})`,
    `uws ${uwsKind()}`,
    `sqlite ${await sqlite()}`,
    `single executable: ${inSingleExecutable() ? 'yes' : 'no'}`
  ].join('\n')
}

export function register (program: Command): void {
  program.command('version')
    .description('print the version, the Node.js version and whether the native parts (µWS, SQLite) load')
    .action(async () => {
      process.stdout.write(`${await versionText()}\n`)
      process.exitCode = 0
    })
}
