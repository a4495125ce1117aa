// Certificates from an ACME CA for bound endpoint names, ordered on demand during the TLS handshake.
//
// - Kept in `<dataDir>/acme/<directory>/` (`<host>.crt` 0644, `<host>.key` 0600, the account key 0600) and
//   reused across restarts; `<directory>` is the directory URL made into a file name, so certificates from a
//   staging CA are never served once the production one is configured.
// - Renewed once two thirds of a certificate's lifetime have passed (30 days before the end of a 90-day
//   one), in the background, by the first handshake that sees it due; the old certificate is served meanwhile.
// - Concurrent handshakes for one name share one order. Handshakes wait for it until `handshakeWaitMs`
//   (default 10 s) after the order started, then go on with the local CA's certificate, and later ones get
//   that at once while the order still runs: an order can take a minute or more when the CA is slow or
//   unreachable (acme-client retries), and a client left hanging that long gives up anyway. The order goes
//   on; the first handshake after it succeeds gets its certificate.
// - Orders pass the rate guard (acme-guard.ts); a name it holds back, or whose order failed, gets the
//   local CA's certificate until its backoff ends.
import { join } from 'node:path'
import type { SecureContext } from 'node:tls'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import { OrderGuard, type OrderGuardOptions } from './acme-guard.js'
import { AcmeClientOrderer, type Orderer } from './acme-orderer.js'
import type { CertReport } from './byo-certs.js'
import { assertCertHost } from './cert-host.js'
import { loadPair } from './cert-pair.js'
import { ensureDataDir, readIfExists, replaceFile } from './key-files.js'

export interface AcmeSettings {
  readonly directoryUrl: string
  readonly email: string
  /** Extra CA certificates (PEM) to trust for the ACME server's HTTPS (`--acme-ca-file`). */
  readonly caPem?: string
}

export interface AcmeCertsOptions extends AcmeSettings {
  readonly dataDir: string
  readonly log?: Logger
  readonly report?: CertReport
  readonly guard?: OrderGuardOptions
  /** How long one handshake waits for a pending order before it takes the local CA's certificate. */
  readonly handshakeWaitMs?: number
  readonly now?: () => number
  /** The ACME client; tests pass a fake. Default: acme-client against `directoryUrl`. */
  readonly orderer?: Orderer
}

interface Entry {
  readonly context: SecureContext
  readonly notAfter: number
  readonly renewAt: number
}

/** Cached "no certificate on disk for this name" (lru-cache holds no undefined). */
const NONE = Object.freeze({ none: true })

/** `https://acme-v02.api.letsencrypt.org/directory` -> `acme-v02.api.letsencrypt.org_directory`. */
export function directoryFolder (directoryUrl: string): string {
  const url = new URL(directoryUrl)
  return `${url.host}${url.pathname}`.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^_+|_+$/g, '').toLowerCase()
}

export class AcmeCerts {
  readonly dir: string
  readonly #orderer: Orderer
  readonly #guard: OrderGuard
  readonly #log: Logger | undefined
  readonly #report: CertReport
  readonly #now: () => number
  readonly #waitMs: number
  readonly #cache = new LRUCache<string, Entry | typeof NONE>({ max: 1000 })
  readonly #pending = new Map<string, { readonly done: Promise<Entry | undefined>, readonly waitUntil: number }>()
  #lastCapReport = 0

  constructor (options: AcmeCertsOptions) {
    this.dir = join(options.dataDir, 'acme', directoryFolder(options.directoryUrl))
    ensureDataDir(this.dir)
    this.#log = options.log
    this.#report = options.report ?? (() => {})
    this.#now = options.now ?? Date.now
    this.#waitMs = options.handshakeWaitMs ?? 10_000
    this.#guard = new OrderGuard({ now: this.#now, ...options.guard })
    this.#orderer = options.orderer ?? new AcmeClientOrderer({ ...options, accountDir: this.dir })
  }

  /** The HTTP-01 answer for `token` while one of our orders waits for it (the HTTP edge serves it). */
  challenge (token: string): string | undefined {
    return this.#orderer.challenge(token)
  }

  /**
   * The context for `host` (an exact name: HTTP-01 cannot validate wildcards): at once when a valid
   * certificate is at hand, a promise while an order runs (undefined when it fails or takes longer than the
   * handshake may wait), undefined when the rate guard holds the name back. Undefined means: use the local CA.
   * Throws a plain Error for a malformed host.
   */
  contextFor (host: string): SecureContext | Promise<SecureContext | undefined> | undefined {
    assertCertHost(host) // it becomes a file name below
    const now = this.#now()
    const entry = this.#stored(host)
    if (entry && now < entry.notAfter) {
      if (now >= entry.renewAt) void this.#order(host) // renew in the background; serve the current one
      return entry.context
    }
    const pending = this.#order(host)
    const waitMs = pending ? pending.waitUntil - this.#now() : 0
    return pending && waitMs > 0 ? within(pending.done, waitMs).then((done) => done?.context) : undefined
  }

  /** When each certificate in memory expires (epoch ms), for metrics: those read or ordered since start. */
  expiries (): number[] {
    const out: number[] = []
    for (const entry of this.#cache.values()) if ('notAfter' in entry) out.push(entry.notAfter)
    return out
  }

  /** The order running for `host`, if any (for tests and diagnostics). */
  pending (host: string): Promise<unknown> | undefined {
    return this.#pending.get(host)?.done
  }

  #stored (host: string): Entry | undefined {
    const cached = this.#cache.get(host)
    if (cached !== undefined) return cached === NONE ? undefined : cached as Entry
    const certPath = join(this.dir, `${host}.crt`)
    const certPem = readIfExists(certPath)
    const keyPem = readIfExists(join(this.dir, `${host}.key`))
    let entry: Entry | undefined
    if (certPem !== null && keyPem !== null) {
      try {
        entry = toEntry(certPem, keyPem)
      } catch (error) {
        // A crash between writing a renewed key and its certificate leaves a mismatch: order again.
        this.#report('PH_4001', `${certPath}: ${(error as Error).message}; ordering a new certificate`, { file: certPath, host })
      }
    }
    this.#cache.set(host, entry ?? NONE)
    return entry
  }

  /** The running order for `host`, or a new one if the guard allows (undefined if it does not). */
  #order (host: string): { readonly done: Promise<Entry | undefined>, readonly waitUntil: number } | undefined {
    const running = this.#pending.get(host)
    if (running) return running
    const verdict = this.#guard.admit(host)
    if (!verdict.ok) {
      const until = new Date(verdict.retryAt).toISOString()
      if (verdict.reason === 'backoff') {
        this.#log?.debug({ host, until }, 'acme: name in backoff after a failed order; serving the local CA certificate')
      } else if (this.#now() - this.#lastCapReport >= 60_000) { // one line a minute while capped
        this.#lastCapReport = this.#now()
        this.#report('PH_4003', `${host}: ${this.#guard.maxPerHour} orders in the last hour; the next is possible at ${until}`, { host, until })
      }
      return undefined
    }
    const order = { done: this.#run(host).finally(() => this.#pending.delete(host)), waitUntil: this.#now() + this.#waitMs }
    this.#pending.set(host, order)
    return order
  }

  async #run (host: string): Promise<Entry | undefined> {
    const started = this.#now()
    this.#log?.info({ host }, 'acme: ordering a certificate')
    try {
      const { certPem, keyPem } = await this.#orderer.order(host)
      const entry = toEntry(certPem, keyPem)
      // Key first: a crash in between leaves a mismatch that the next start detects (and orders again).
      replaceFile(join(this.dir, `${host}.key`), keyPem, 0o600)
      replaceFile(join(this.dir, `${host}.crt`), certPem, 0o644)
      this.#cache.set(host, entry)
      this.#guard.succeeded(host)
      this.#log?.info({ host, ms: this.#now() - started, notAfter: new Date(entry.notAfter).toISOString() }, 'acme: certificate issued')
      return entry
    } catch (error) {
      const retryAt = new Date(this.#guard.failed(host)).toISOString()
      this.#report('PH_4002', `${host}: ${(error as Error).message}; not ordered again before ${retryAt}`, { host, retryAt })
      return undefined
    }
  }
}

function toEntry (certPem: string, keyPem: string): Entry {
  const { context, notBefore, notAfter } = loadPair(certPem, keyPem)
  return { context, notAfter, renewAt: notBefore + (notAfter - notBefore) * 2 / 3 }
}

/** The promise's value, or undefined once `ms` have passed (the promise itself goes on). */
function within<T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(resolve, ms, undefined) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
