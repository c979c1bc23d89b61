// A client's address on this machine (IPv4 loopback, IPv6 loopback, or IPv4 loopback mapped into
// IPv6): the limits per address exempt it unless `exemptLoopback` is off (docs/security.md).
const LOOPBACK = /^(?:127\.|::1$|::ffff:127\.)/

export function isLoopbackAddress (address: string): boolean {
  return LOOPBACK.test(address)
}
