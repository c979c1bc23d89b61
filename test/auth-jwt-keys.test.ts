// JWTs signed with a private key (RS256 for RSA, EdDSA for Ed25519) by `roundgate token --key`,
// verified by a broker holding the public half (--jwt-public-key); a token of the wrong kind or
// key is refused (PROTOCOL sections 7 and 8).
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { startBroker } from './helpers/broker.js'
import { SECRET, connackCode } from './helpers/auth.js'
import { secretKey, signToken } from '../plugins/auth/index.js'

const run = promisify(execFile)
const cli = new URL('../../bin/roundgate.js', import.meta.url).pathname
const dir = await mkdtemp(join(tmpdir(), 'rg-keys-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))

for (const kind of ['rsa', 'ed25519'] as const) {
  void t.test(`${kind === 'rsa' ? 'RS256' : 'EdDSA'}: a private key signs, the broker verifies with the public key`, async (t) => {
    const pair = kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ed25519')
    const priv = join(dir, `${kind}.key`)
    const pub = join(dir, `${kind}.pub`)
    await writeFile(priv, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    await writeFile(pub, pair.publicKey.export({ type: 'spki', format: 'pem' }))
    const b = await startBroker({ jwtPublicKey: pub })
    t.teardown(b.close)
    const { stdout } = await run(process.execPath, [cli, 'token', '--key', priv, '--sub', `k-${kind}`, '--role', 'terminal', '--ttl', '5m'])
    const token = stdout.trim()
    const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())
    t.equal(header.alg, kind === 'rsa' ? 'RS256' : 'EdDSA', 'the algorithm follows the key')
    t.equal(await connackCode(b.url, `k-${kind}`, { username: 'x', password: token }), 0, 'accepted')
    const hs = await signToken(secretKey(SECRET), { sub: `k-${kind}`, role: 'terminal', ttlS: 60 })
    t.equal(await connackCode(b.url, `k-${kind}`, { username: 'x', password: hs }), 4, 'an HS256 token is refused by a public-key broker (no algorithm confusion)')
    const other = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519')
    const otherFile = join(dir, `${kind}-other.key`)
    await writeFile(otherFile, other.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    const forged = (await run(process.execPath, [cli, 'token', '--key', otherFile, '--sub', `k-${kind}`, '--role', 'admin'])).stdout.trim()
    t.equal(await connackCode(b.url, `k-${kind}`, { username: 'x', password: forged }), 4, 'a token signed by another key is refused')
  })
}
