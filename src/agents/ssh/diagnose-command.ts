// `ssh gateway diagnose`: what the gateway sees of the caller, for a user who wonders why a name is refused or
// which key their client offered: client address, port and version string, the key's SHA256 fingerprint or the
// authtoken's id, the account (or anonymous), the credential's ACL, the account's reservations, the owner's live
// endpoints, and the round-trip time of the SSH connection.
//
// The round trip: the gateway sends `keepalive@openssh.com` global requests with want-reply; OpenSSH and
// Dropbear answer them with a request failure at once (RFC 4254 4: unknown requests are answered), which is a
// fine echo. ssh2's server has no API to send one and wait for the answer, so this sets the protocol's
// REQUEST_SUCCESS/REQUEST_FAILURE handlers (which ssh2's server leaves empty) and calls its ping(). Replies come
// in order; ssh2's own liveness pings get replies too, and one of those arriving during a probe would make it
// look shorter, so three probes are sent one after another and their median is reported.
import type { Connection } from 'ssh2'
import type { Owner } from '../../core/endpoint.js'
import type { CredentialKind } from '../../core/session.js'
import type { OwnedUrl } from './urls-command.js'
import { forwardLabel } from './terminal.js'

export interface Diagnosis {
  readonly client: { readonly ip: string, readonly port: number, readonly version: string }
  readonly credential: { readonly kind: CredentialKind, readonly id: string | null, readonly fingerprint: string | null }
  /** null: anonymous, or a key of --authorized-keys (the implicit default account). */
  readonly account: string | null
  /** The key's or token's ACL; empty: anything the account may bind; null: no ACL applies (no account). */
  readonly acl: readonly string[] | null
  readonly reservations: ReadonlyArray<{ readonly kind: 'domain' | 'tcp', readonly value: string }>
  readonly endpoints: readonly OwnedUrl[]
  /** Milliseconds, the median of three keepalive round trips; null when the client did not answer in time. */
  readonly rttMs: number | null
}

/** The parts of the identity store diagnose reads (an SSH login's credential and account). */
export interface IdentityView {
  listKeys (account?: string): ReadonlyArray<{ readonly id: string, readonly acl: readonly string[] }>
  listTokens (account?: string): ReadonlyArray<{ readonly id: string, readonly acl: readonly string[] }>
  listReservations (account?: string): ReadonlyArray<{ readonly kind: 'domain' | 'tcp', readonly value: string }>
}

const PROBES = 3
const PROBE_TIMEOUT_MS = 5_000

interface ProtocolInternals {
  _protocol?: { ping?: () => void, _handlers?: Record<string, unknown> }
}

/** Round trips of `keepalive@openssh.com` (see the header). Resolves null if the client does not answer. */
export async function measureRtt (client: Connection, timeoutMs = PROBE_TIMEOUT_MS): Promise<number | null> {
  const proto = (client as unknown as ProtocolInternals)._protocol
  if (typeof proto?.ping !== 'function' || proto._handlers === undefined) return null
  const handlers = proto._handlers
  const samples: number[] = []
  for (let i = 0; i < PROBES; i++) {
    const sample = await new Promise<number | null>((resolve) => {
      const started = performance.now()
      const done = (value: number | null): void => {
        clearTimeout(timer)
        delete handlers.REQUEST_SUCCESS
        delete handlers.REQUEST_FAILURE
        resolve(value)
      }
      const timer = setTimeout(() => done(null), timeoutMs)
      handlers.REQUEST_SUCCESS = handlers.REQUEST_FAILURE = () => done(performance.now() - started)
      try {
        proto.ping!()
      } catch {
        done(null)
      }
    })
    if (sample === null) return null
    samples.push(sample)
  }
  samples.sort((a, b) => a - b)
  return Math.round(samples[Math.floor(samples.length / 2)]! * 100) / 100
}

export interface DiagnoseInput {
  readonly login: { readonly credential: { readonly kind: CredentialKind, readonly id: string | null }, readonly fingerprint: string | null, readonly remoteAddr: string, readonly remotePort: number, readonly clientVersion: string }
  readonly owner: Owner
  readonly identity: IdentityView | undefined
  readonly endpoints: readonly OwnedUrl[]
  readonly rttMs: number | null
}

export function diagnose ({ login, owner, identity, endpoints, rttMs }: DiagnoseInput): Diagnosis {
  const account = owner.account ?? null
  const { kind, id } = login.credential
  const record = identity === undefined || id === null
    ? undefined
    : kind === 'key' ? identity.listKeys(account ?? undefined).find((k) => k.id === id) : kind === 'token' ? identity.listTokens(account ?? undefined).find((t) => t.id === id) : undefined
  return {
    client: { ip: login.remoteAddr, port: login.remotePort, version: login.clientVersion },
    credential: { kind, id, fingerprint: login.fingerprint },
    account,
    acl: record ? [...record.acl] : null,
    reservations: account !== null && identity !== undefined ? identity.listReservations(account).map((r) => ({ kind: r.kind, value: r.value })) : [],
    endpoints,
    rttMs,
  }
}

const CREDENTIAL: Record<CredentialKind, string> = {
  key: 'account key',
  token: 'authtoken',
  'authorized-key': 'key from --authorized-keys (no account)',
  anonymous: 'anonymous (a key the gateway does not know)',
}

/** The text lines, labels padded to one column. */
export function diagnoseText (d: Diagnosis): string {
  const rows: Array<[string, string]> = [
    ['Client', `${d.client.ip} port ${d.client.port}`],
    ['Version', d.client.version || '(none sent)'],
    ['Key', d.credential.fingerprint ?? (d.credential.kind === 'token' ? '(none: authtoken as the password)' : '(none offered: logged in without a key)')],
    ['Credential', `${CREDENTIAL[d.credential.kind]}${d.credential.id ? ` ${d.credential.id}` : ''}`],
    ['Account', d.account ?? 'none'],
    ['ACL', d.acl === null ? '(none)' : d.acl.length === 0 ? '(none: anything the account may bind)' : d.acl.join(', ')],
    ['Reservations', d.reservations.length === 0 ? '(none)' : d.reservations.map((r) => (r.kind === 'tcp' ? `tcp:${r.value}` : r.value)).join(', ')],
  ]
  const width = Math.max(...rows.map(([label]) => label.length), 'Endpoints'.length, 'Round trip'.length) + 2
  const lines = rows.map(([label, value]) => `${label.padEnd(width)}${value}`)
  if (d.endpoints.length === 0) lines.push(`${'Endpoints'.padEnd(width)}(none online)`)
  const urlWidth = Math.max(0, ...d.endpoints.map((e) => e.url.length))
  d.endpoints.forEach((e, i) => lines.push(`${(i === 0 ? 'Endpoints' : '').padEnd(width)}${e.url.padEnd(urlWidth)}  ${e.ssh ? forwardLabel(e.bind) : '(ngrok agent)'}`))
  lines.push(`${'Round trip'.padEnd(width)}${d.rttMs === null ? 'no answer (keepalive@openssh.com)' : `${d.rttMs} ms (keepalive@openssh.com)`}`)
  return lines.join('\n')
}

/** One JSON object with snake_case fields, as the admin API writes them. */
export function diagnoseJson (d: Diagnosis): string {
  return JSON.stringify({
    event: 'diagnose',
    client_ip: d.client.ip,
    client_port: d.client.port,
    client_version: d.client.version,
    credential: d.credential,
    account: d.account,
    acl: d.acl,
    reservations: d.reservations,
    endpoints: d.endpoints.map((e) => ({ url: e.url, proto: e.proto, bind: e.ssh ? e.bind : null })),
    rtt_ms: d.rttMs,
  })
}
