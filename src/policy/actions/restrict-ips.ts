// restrict-ips: allow/deny by CIDR on the TCP peer address (never on X-Forwarded-For, which anyone can send).
// Deny wins over allow; with an allow list, everything not on it is denied.
import ipaddr from 'ipaddr.js'
import { PortholeError } from '../../core/errors.js'
import type { RestrictIpsAction } from '../document.js'
import type { ConnectStep, Denial } from '../compiled.js'

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

const DENIED: Denial = { code: 'PH_3100' }
/** Addresses whose answer one restrict-ips action remembers; past this, it starts over. */
const MAX_REMEMBERED = 1024

export function parseCidr (text: string): Range {
  const value = String(text).trim()
  try {
    if (value.includes('/')) return ipaddr.parseCIDR(value)
    const addr = ipaddr.parse(value)
    return [addr, addr.kind() === 'ipv4' ? 32 : 128]
  } catch {
    throw new PortholeError('PH_1004', JSON.stringify(value))
  }
}

function matchesAny (addr: ipaddr.IPv4 | ipaddr.IPv6, ranges: Range[]): boolean {
  for (const range of ranges) {
    if (range[0].kind() === addr.kind() && addr.match(range)) return true
  }
  return false
}

export function compileRestrictIps (action: RestrictIpsAction): ConnectStep {
  const allow = (action.config.allow ?? []).map(parseCidr)
  const deny = (action.config.deny ?? []).map(parseCidr)
  if (allow.length === 0 && deny.length === 0) {
    throw new PortholeError('PH_1004', '(restrict-ips needs allow or deny entries)')
  }
  if (action.config.enforce === false) return () => undefined // ngrok's dry run: nothing is denied
  const decide = (clientIp: string): Denial | undefined => {
    let addr: ipaddr.IPv4 | ipaddr.IPv6
    try {
      addr = ipaddr.process(clientIp) // ::ffff:1.2.3.4 -> 1.2.3.4
    } catch {
      return DENIED
    }
    if (deny.length > 0 && matchesAny(addr, deny)) return DENIED
    if (allow.length > 0 && !matchesAny(addr, allow)) return DENIED
    return undefined
  }
  // The answer depends on the address alone, and an HTTP client sends many requests from one address:
  // remember recent answers rather than parse the address on every request.
  const recent = new Map<string, Denial | undefined>()
  return (ctx) => {
    const ip = ctx.clientIp
    const known = recent.get(ip)
    if (known !== undefined || recent.has(ip)) return known
    const answer = decide(ip)
    if (recent.size >= MAX_REMEMBERED) recent.clear()
    recent.set(ip, answer)
    return answer
  }
}
