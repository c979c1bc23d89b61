// The HTTP API (PROTOCOL section 5) as the dashboard calls it: JSON in and out, the session's
// Bearer token when there is one, and the server's error body turned into an ApiError that keeps
// its code and message (shown to the operator as they are).

export class ApiError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
    this.name = 'ApiError'
  }

  /** the route does not exist on this server (an older build): the feature is unavailable */
  get missingRoute (): boolean {
    return this.status === 404 && this.code === 'not_found'
  }
}

export class Api {
  token: string | null = null
  /** told when a call answers 401 (an expired or refused token) */
  onUnauthorized: (() => void) | null = null

  async get<T> (path: string): Promise<T> { return await this.call<T>('GET', path) }
  async post<T> (path: string, body: unknown): Promise<T> { return await this.call<T>('POST', path, body) }
  async patch<T> (path: string, body: unknown): Promise<T> { return await this.call<T>('PATCH', path, body) }

  async call<T> (method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (this.token !== null) headers.Authorization = `Bearer ${this.token}`
    let res: Response
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' })
    } catch (err) {
      throw new ApiError(0, 'network', `the server did not answer (${err instanceof Error ? err.message : String(err)})`)
    }
    const text = await res.text()
    let parsed: unknown = null
    if (text !== '') {
      try { parsed = JSON.parse(text) } catch { parsed = null }
    }
    if (res.ok) return parsed as T
    const e = (parsed as { error?: { code?: unknown, message?: unknown } } | null)?.error
    const code = typeof e?.code === 'string' ? e.code : `http_${res.status}`
    const message = typeof e?.message === 'string' ? e.message : `${method} ${path} answered ${res.status}`
    if (res.status === 401) this.onUnauthorized?.()
    throw new ApiError(res.status, code, message)
  }
}

export const enc = encodeURIComponent

export function groupPath (g: string, rest = ''): string {
  return `/v1/groups/${enc(g)}${rest}`
}

/** An error as one line for the page. */
export function errorText (err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`
  return err instanceof Error ? err.message : String(err)
}
