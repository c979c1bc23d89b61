// Test harness for authentication: a credentials file written with a cheap scrypt cost, tokens,
// and CONNECTs whose CONNACK return code is the answer.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { formatEntry, hashPassword, type Role } from '../../plugins/auth/index.js'

export const SECRET = 'test-secret-0123456789-0123456789-abcdef'

export interface User { user: string, role: Role, password: string, clients?: string, groups?: string }

/** A credentials file in a fresh directory; `dir` and `path`, and `remove` for teardown. */
export async function passwdFile (users: User[]): Promise<{ dir: string, path: string, write: (users: User[]) => Promise<void>, remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-auth-'))
  const path = join(dir, 'passwd')
  const write = async (list: User[]): Promise<void> => {
    const lines: string[] = ['# test users']
    for (const u of list) {
      const hash = await hashPassword(u.password, { ln: 10, r: 8, p: 1 })
      lines.push(formatEntry({ user: u.user, role: u.role, clients: u.clients ?? '-', groups: u.groups ?? '*', hash }))
    }
    await writeFile(path, lines.join('\n') + '\n')
  }
  await write(users)
  return { dir, path, write, remove: async () => await rm(dir, { recursive: true, force: true }) }
}

/** CONNECT and resolve with the CONNACK return code (0 = accepted; the client is then ended). */
export async function connackCode (url: string, clientId: string, opts: IClientOptions = {}): Promise<number> {
  const c = mqtt.connect(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  return await new Promise((resolve) => {
    c.once('connect', () => { c.end(true); resolve(0) })
    c.once('error', (err: Error & { code?: number }) => { c.end(true); resolve(typeof err.code === 'number' ? err.code : -1) })
    c.once('close', () => resolve(-1))
  })
}

/** Connect with credentials; rejects with the CONNACK code in the message when refused. */
export async function login (url: string, clientId: string, username: string | undefined, password: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { clientId, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  return await new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c))
    c.once('error', (err) => { c.end(true); reject(err) })
    c.once('close', () => reject(new Error(`${clientId}: closed before CONNACK`)))
  })
}

/** The QoS granted to each filter, one SUBSCRIBE each (128: refused, which mqtt.js reports as an error). */
export async function granted (c: MqttClient, filters: string[]): Promise<number[]> {
  const out: number[] = []
  for (const f of filters) {
    out.push(await c.subscribeAsync(f, { qos: 1 }).then((g) => g[0]?.qos ?? 128, () => 128))
  }
  return out
}
