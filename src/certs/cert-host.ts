// Which names a certificate may be issued for. The certs layer checks only the shape of a name (lower-case
// DNS name, optional leading '*.'); whether the gateway may serve that name at all is the caller's question.
// Kept apart from core/names so the certs layer imports nothing above it.

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/** Throws a plain Error unless `host` is a lower-case DNS name, optionally starting with `*.`. */
export function assertCertHost (host: string): void {
  if (host.length === 0 || host.length > 253) throw new Error(`cannot issue a certificate for ${describe(host)}: a host name has 1 to 253 characters`)
  const labels = (host.startsWith('*.') ? host.slice(2) : host).split('.')
  for (const label of labels) {
    if (!LABEL.test(label)) {
      throw new Error(`cannot issue a certificate for ${describe(host)}: labels are a-z, 0-9 and inner '-', at most 63 characters`)
    }
  }
  // An all-digit last label is an IPv4 address (or nonsense); a dNSName SAN must not carry one.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) throw new Error(`cannot issue a certificate for ${describe(host)}: not a DNS name`)
}

function describe (host: string): string {
  return JSON.stringify(host.length > 60 ? `${host.slice(0, 60)}...` : host)
}
