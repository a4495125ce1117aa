// TLS secure contexts for the HTTPS edge, one per host, made on demand from the local CA and cached: the
// edge's SNICallback asks for a context during each handshake, so a cache hit must cost a map lookup and a
// miss one signature (a few ms, synchronous).
import { createSecureContext, type SecureContext } from 'node:tls'
import { LRUCache } from 'lru-cache'
import { LocalCa, type IssuedCert } from './local-ca.js'

const DAY_MS = 24 * 3_600_000

export interface CertStoreOptions {
  readonly dataDir: string
  /** Hosts whose context stays cached (least recently used ones are dropped). Default 1000. */
  readonly maxCached?: number
  /** A cached certificate is re-issued once it expires within this window. Default 30 days. */
  readonly renewBeforeMs?: number
  readonly now?: () => number
}

interface Entry {
  readonly context: SecureContext
  readonly renewAt: number
}

/**
 * Certificates for endpoint hosts, signed by the gateway's local CA (see local-ca.ts).
 *
 * The store issues for any well-formed name it is given. Callers must ask only for hosts that are bound
 * endpoints (look the SNI name up in the registry first): the gateway must never sign names it does not
 * serve, and an unchecked SNI name would let anyone fill the cache and spend CPU on signatures.
 */
export class CertStore {
  readonly caPem: string
  readonly #ca: LocalCa
  readonly #cache: LRUCache<string, Entry>
  readonly #renewBeforeMs: number
  readonly #now: () => number

  constructor (options: CertStoreOptions) {
    this.#ca = LocalCa.loadOrCreate(options.dataDir)
    this.caPem = this.#ca.certPem
    this.#cache = new LRUCache({ max: options.maxCached ?? 1000 })
    this.#renewBeforeMs = options.renewBeforeMs ?? 30 * DAY_MS
    this.#now = options.now ?? Date.now
  }

  /** The context to serve `host` with (case-insensitive). Throws a plain Error for a malformed host. */
  /**
   * What the HTTPS listener asks during a handshake, for a bound endpoint's host (or wildcard pattern).
   * May become asynchronous (certificates ordered from an ACME CA take a while); the listener waits.
   */
  contextFor (host: string): SecureContext | Promise<SecureContext> {
    return this.secureContextFor(host)
  }

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
