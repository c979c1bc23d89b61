// The one error catalogue of roundgate. Every refusal, over MQTT (rg/{g}/error/{id}) or HTTP
// ({"error": {"code", "message"}}), carries one of these string codes. README lists the same set
// (test/errors.test.ts keeps the two in step).

export const ERROR_CODES = {
  // PROTOCOL.md section 4
  bad_request: { status: 400, message: 'the request is malformed' },
  bad_topic: { status: 400, message: 'the topic is not a roundgate topic' },
  payload_too_large: { status: 413, message: 'the payload is too large' },
  unknown_group: { status: 404, message: 'no such group' },
  not_participant: { status: 403, message: 'not a participant of the current round' },
  stale_round: { status: 409, message: 'that round is not the current executing round' },
  duplicate: { status: 409, message: 'already reported' },
  forbidden: { status: 403, message: 'not allowed' },
  unauthorized: { status: 401, message: 'authentication required' },
  rate_limited: { status: 429, message: 'too many requests' },
  unavailable: { status: 503, message: 'the service is unavailable' },
  // roundgate's own, documented in README
  superseded: { status: 409, message: 'a newer long-poll from the same clientId replaced this one' },
  unknown_job: { status: 404, message: 'no such job' },
  not_found: { status: 404, message: 'no such route' }
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export class RgError extends Error {
  readonly code: ErrorCode
  readonly status: number

  constructor (code: ErrorCode, message?: string) {
    super(message ?? ERROR_CODES[code].message)
    this.name = 'RgError'
    this.code = code
    this.status = ERROR_CODES[code].status
  }

  toJSON (): { code: ErrorCode, message: string } {
    return { code: this.code, message: this.message }
  }
}

export function isRgError (err: unknown): err is RgError {
  return err instanceof RgError
}

/** Any thrown value as an RgError: ours pass through, anything else is `unavailable`. */
export function toRgError (err: unknown): RgError {
  if (err instanceof RgError) return err
  const msg = err instanceof Error ? err.message : String(err)
  return new RgError('unavailable', msg)
}
