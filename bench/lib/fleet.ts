// The parent's side of the load generators: G forked processes (bench/gen/main.ts), terminals dealt
// out round-robin, one progress line on stderr while thousands connect. Every child is killed
// when the run ends, on error and on exit.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { track } from './procs.js'

const GEN = fileURLToPath(new URL('../gen/main.js', import.meta.url))

interface Reply { seq?: number, result?: unknown, error?: string, progress?: { done: number, total: number } }

export class Gen {
  readonly index: number
  readonly child: ChildProcess
  private seq = 0
  private readonly waiting = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  progress = 0

  constructor (index: number) {
    this.index = index
    this.child = fork(GEN, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=2048'] })
    track(this.child)
    this.child.on('message', (m: Reply) => {
      if (m.progress !== undefined) { this.progress = m.progress.done; return }
      const w = this.waiting.get(m.seq as number)
      if (w === undefined) return
      this.waiting.delete(m.seq as number)
      if (m.error !== undefined) w.reject(new Error(`generator ${this.index}: ${m.error}`))
      else w.resolve(m.result)
    })
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`generator ${this.index} exited (${code})`))
      this.waiting.clear()
    })
  }

  async call<T = any> (cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const seq = ++this.seq
    return await new Promise<T>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject })
      this.child.send({ seq, cmd, args })
    })
  }

  kill (): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL')
  }
}

export class Fleet {
  readonly gens: Gen[]
  constructor (count: number) {
    this.gens = Array.from({ length: count }, (_v, i) => new Gen(i))
  }

  /** Deal ids round-robin: ids[i] lives in generator i % G. */
  deal (ids: string[]): string[][] {
    const out: string[][] = this.gens.map(() => [])
    ids.forEach((id, i) => out[i % this.gens.length].push(id))
    return out
  }

  genOf (ids: string[], id: string): Gen {
    return this.gens[ids.indexOf(id) % this.gens.length]
  }

  /** Run one command on every generator with its own arguments, showing a progress line. */
  async each<T = any> (label: string, argsOf: (g: Gen, i: number) => Record<string, unknown> | null, cmd: string, total?: number): Promise<T[]> {
    for (const g of this.gens) g.progress = 0
    // the running count only on a terminal; a log gets the closing line alone
    const timer = total !== undefined && process.stderr.isTTY
      ? setInterval(() => {
        const done = this.gens.reduce((n, g) => n + g.progress, 0)
        process.stderr.write(`\r  ${label}: ${done}/${total}   `)
      }, 250)
      : null
    try {
      const out = await Promise.all(this.gens.map(async (g, i) => {
        const a = argsOf(g, i)
        return a === null ? (undefined as T) : await g.call<T>(cmd, a)
      }))
      if (total !== undefined) process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}  ${label}: ${total}/${total}   \n`)
      return out
    } finally {
      if (timer !== null) clearInterval(timer)
    }
  }

  async close (): Promise<void> {
    await Promise.all(this.gens.map(async (g) => await g.call('close').catch((err: Error) => { console.error(`a generator did not close cleanly: ${err.message}`) })))
    for (const g of this.gens) g.kill()
  }
}
