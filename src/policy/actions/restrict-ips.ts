// restrict-ips: allow/deny by CIDR on the TCP peer address (never on X-Forwarded-For, which anyone can send).
// Deny wins over allow; with an allow list, everything not on it is denied.
import ipaddr from 'ipaddr.js'
import { PortholeError } from '../../core/errors.js'
import type { RestrictIpsAction } from '../document.js'
import type { ConnectStep } from '../compiled.js'

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

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
  return (ctx) => {
    let addr: ipaddr.IPv4 | ipaddr.IPv6
    try {
      addr = ipaddr.process(ctx.clientIp) // ::ffff:1.2.3.4 -> 1.2.3.4
    } catch {
      return { code: 'PH_3100' }
    }
    if (deny.length > 0 && matchesAny(addr, deny)) return { code: 'PH_3100' }
    if (allow.length > 0 && !matchesAny(addr, allow)) return { code: 'PH_3100' }
    return undefined
  }
}
