// TLS secure contexts for the HTTPS edge, one per host. Sources, first match wins: bring-your-own files
// (--certs-dir, byo-certs.ts), then ACME (--acme-directory, acme-certs.ts; exact names only), then the local
// CA, whose certificates are made on demand and cached: the edge's SNICallback asks for a context during
// each handshake, so a cache hit must cost a map lookup and a miss one signature (a few ms, synchronous).
import { createSecureContext, type SecureContext } from 'node:tls'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import { AcmeCerts, type AcmeCertsOptions } from './acme-certs.js'
import { ByoCerts, type CertReport } from './byo-certs.js'
import { LocalCa, type IssuedCert } from './local-ca.js'

const DAY_MS = 24 * 3_600_000

export interface CertStoreOptions {
  readonly dataDir: string
  /** Hosts whose context stays cached (least recently used ones are dropped). Default 1000. */
  readonly maxCached?: number
  /** A cached certificate is re-issued once it expires within this window. Default 30 days. */
  readonly renewBeforeMs?: number
  readonly now?: () => number
  /** A directory of `<host>.crt`/`<host>.key` pairs, watched; they win over ACME and the local CA. */
  readonly certsDir?: string
  /** Order certificates for bound names from this ACME CA. */
  readonly acme?: Omit<AcmeCertsOptions, 'dataDir' | 'log' | 'report' | 'now'>
  readonly log?: Logger
  /** Where the catalogued certificate warnings (PH_4001-PH_4003) go. */
  readonly report?: CertReport
}

interface Entry {
  readonly context: SecureContext
  readonly renewAt: number
}

/**
 * Certificates for endpoint hosts: the operator's own (byo-certs.ts), ordered from an ACME CA
 * (acme-certs.ts), or signed by the gateway's local CA (local-ca.ts).
 *
 * The store issues (and orders) for any well-formed name it is given. Callers must ask only for hosts that
 * are bound endpoints (look the SNI name up in the registry first): the gateway must never sign or order
 * names it does not serve, and an unchecked SNI name would let anyone fill the cache, spend CPU on
 * signatures and spend the ACME CA's rate limits.
 */
export class CertStore {
  readonly caPem: string
  readonly #ca: LocalCa
  readonly #cache: LRUCache<string, Entry>
  readonly #renewBeforeMs: number
  readonly #now: () => number
  readonly byo: ByoCerts | null
  readonly acme: AcmeCerts | null

  constructor (options: CertStoreOptions) {
    this.#ca = LocalCa.loadOrCreate(options.dataDir)
    this.caPem = this.#ca.certPem
    this.#cache = new LRUCache({ max: options.maxCached ?? 1000 })
    this.#renewBeforeMs = options.renewBeforeMs ?? 30 * DAY_MS
    this.#now = options.now ?? Date.now
    const { log, report, now } = options
    this.byo = options.certsDir ? new ByoCerts({ dir: options.certsDir, log, report, now }) : null
    this.acme = options.acme ? new AcmeCerts({ ...options.acme, dataDir: options.dataDir, log, report, now }) : null
  }

  /**
   * What the HTTPS listener asks during a handshake, for a bound endpoint's host (or wildcard pattern) and
   * the client's server name (a name the pattern covers). A promise while an ACME order runs; it never
   * rejects for that: a failed or slow order falls back to the local CA. Throws for a malformed host.
   */
  contextFor (host: string, serverName: string = host, { acme = true }: { acme?: boolean } = {}): SecureContext | Promise<SecureContext> {
    const own = this.byo?.lookup(serverName)
    if (own) return own
    const key = host.toLowerCase()
    if (acme && this.acme && !key.startsWith('*.')) {
      const ordered = this.acme.contextFor(key)
      if (ordered instanceof Promise) return ordered.then((context) => context ?? this.secureContextFor(key))
      if (ordered) return ordered
    }
    return this.secureContextFor(key)
  }

  /** When the certificates this store serves expire (epoch ms), by source, for metrics: the local CA's own
   *  certificate and its cached leaves, the certs dir's pairs, the ACME certificates in memory. */
  expiries (): { readonly localCa: number[], readonly byo: number[], readonly acme: number[] } {
    const leaves = [...this.#cache.values()].map((entry) => entry.renewAt + this.#renewBeforeMs)
    return { localCa: [this.#ca.notAfter.getTime(), ...leaves], byo: this.byo?.expiries() ?? [], acme: this.acme?.expiries() ?? [] }
  }

  /** The HTTP-01 answer for an ACME token, while an order waits for it. */
  acmeChallenge (token: string): string | undefined {
    return this.acme?.challenge(token)
  }

  /** Stops watching the certs dir. */
  close (): void {
    this.byo?.close()
  }

  /** The local CA's context for `host` (case-insensitive). Throws a plain Error for a malformed host. */
  secureContextFor (host: string): SecureContext {
    const key = host.toLowerCase()
    const cached = this.#cache.get(key)
    if (cached && cached.renewAt > this.#now()) return cached.context
    const issued = this.issue(key)
    const context = createSecureContext({ key: issued.keyPem, cert: issued.certPem, minVersion: 'TLSv1.2' })
    this.#cache.set(key, { context, renewAt: issued.notAfter.getTime() - this.#renewBeforeMs })
    return context
  }

  /** A fresh certificate for `host` (not cached); the key is the gateway's shared leaf key. */
  issue (host: string): IssuedCert {
    return this.#ca.issue(host, this.#now())
  }
}
