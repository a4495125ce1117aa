// Requests a traffic policy makes by itself (jwt-validation's key sets, an OpenID provider's discovery,
// keys and token endpoints) go to URLs that an SSH user chose. Unless the operator allows it
// (--policy-private-urls), they never reach loopback, private, link-local or other non-public addresses of the
// gateway's own network: a URL naming such an address is refused when the policy is compiled, and every
// address DNS answers is checked again when connecting, so a name resolving (or re-resolving) to an internal
// address is refused as well.
import diagnostics from 'node:diagnostics_channel'
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { BlockList, isIP } from 'node:net'
import ipaddr from 'ipaddr.js'
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici'

/** IPv4-compatible IPv6 (`::a.b.c.d`, deprecated by RFC 4291): ipaddr.js reads the dotted form as
 *  IPv4-mapped, and the hex form (`::7f00:1`) as a unicast address; Node parses both right. */
const IPV4_COMPATIBLE = new BlockList()
IPV4_COMPATIBLE.addSubnet('::', 96, 'ipv6')

/** Public unicast only: not loopback, private, link-local, unique-local, carrier-grade NAT, multicast,
 *  IPv4-compatible IPv6... */
export function isPublicAddress (ip: string): boolean {
  try {
    if (isIP(ip) === 6 && IPV4_COMPATIBLE.check(ip, 'ipv6')) return false
    return ipaddr.process(ip).range() === 'unicast'
  } catch {
    return false
  }
}

/** Why `url` may not be fetched by a policy, or null. Only literal addresses and `localhost` are known here. */
export function refusedUrl (url: string, allowPrivate: boolean): string | null {
  if (allowPrivate) return null
  let host: string
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase()
  } catch {
    return 'not a URL'
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is this gateway's own machine`
  if (isIP(host) !== 0 && !isPublicAddress(host)) return `${host} is not a public address`
  return null
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void
type AllLookup = (hostname: string, options: LookupOptions & { all: true }, callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void

/**
 * Why an outbound request failed, for the gateway's log: `porthole:policy:outbound` publishes
 * `{ url, reason }`. What a visitor sees (`unreachableDetail`) says only that the host was unreachable: a name
 * that resolves to internal addresses must not look different from one that does not exist, or an SSH user
 * could map the gateway's internal names through a policy's error pages.
 */
export const outboundChannel = diagnostics.channel('porthole:policy:outbound')

/** What an outbound failure publishes. */
export interface OutboundFailure {
  readonly url: string
  readonly reason: string
}

/** The visitor-facing detail of a failed request to `url`; the precise reason goes to the channel. */
export function unreachableDetail (url: string, error: unknown): string {
  let host: string
  try {
    host = new URL(url).host
  } catch {
    host = 'provider'
  }
  if (outboundChannel.hasSubscribers) {
    const err = error as (Error & { code?: string, cause?: { message?: string, code?: string } }) | undefined
    const reason = [err?.message, err?.code, err?.cause?.message].filter((part) => typeof part === 'string' && part !== '').join(': ')
    outboundChannel.publish({ url, reason } satisfies OutboundFailure)
  }
  return `${host} unreachable`
}

/** A `lookup` for net.connect that answers only the public addresses `resolve` finds for a name. A name with
 *  none fails with ENOTFOUND, like a name that does not exist (the message, for the log, says which). */
export function publicOnly (resolve: AllLookup) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, [])
      const usable = addresses.filter((a) => isPublicAddress(a.address))
      if (usable.length === 0) {
        return callback(Object.assign(new Error(`${hostname} resolves to no public address (the operator can allow private ones with --policy-private-urls)`), { code: 'ENOTFOUND' }), [])
      }
      if (options.all) callback(null, usable)
      else callback(null, usable[0]!.address, usable[0]!.family)
    })
  }
}

let publicAgent: Agent | undefined
let anyAgent: Agent | undefined

/** The dispatcher policy requests use. */
export function policyDispatcher (allowPrivate: boolean): Dispatcher {
  if (allowPrivate) return (anyAgent ??= new Agent({ connections: 16 }))
  return (publicAgent ??= new Agent({ connections: 16, connect: { lookup: publicOnly(dnsLookup as AllLookup) as never } }))
}

/** A fetch for jose's remote key sets that keeps to the same rule. */
export function policyFetch (allowPrivate: boolean): (url: string, init: RequestInit) => Promise<Response> {
  return async (url, init) => {
    const refusal = refusedUrl(url, allowPrivate)
    if (refusal) throw new Error(`${url}: ${refusal}`)
    return await undiciFetch(url, { ...(init as object), dispatcher: policyDispatcher(allowPrivate), redirect: 'manual' }) as unknown as Response
  }
}
