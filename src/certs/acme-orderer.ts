// Orders one certificate from an ACME CA with acme-client, validated by HTTP-01: the CA fetches
// http://<host>/.well-known/acme-challenge/<token> and the HTTP edge answers from `challenge(token)`.
// The account key (ECDSA P-256) is made once and kept in the ACME folder of the data dir; each certificate
// gets a fresh key. Knows nothing of caching, files of certificates or rate limits (acme-certs.ts does).
// acme-client (with its axios) is loaded on the first order: it added ~4 MiB to the V8 heap every gateway
// starts with (25.4 -> 21.1 MiB without it), in gateways that never use ACME too.
import { Agent } from 'node:https'
import { join } from 'node:path'
import { rootCertificates } from 'node:tls'
import type { Client } from 'acme-client'
import type { Logger } from 'pino'
import { loadOrCreateEcKey, newEcKeyPem } from './key-files.js'

export const ACCOUNT_KEY_FILE = 'account-key.pem'
// RFC 5280's upper bound for a commonName; longer hosts go in the SAN only.
const MAX_CN_LENGTH = 64

export interface OrderedCert {
  /** The leaf and its chain, PEM. */
  readonly certPem: string
  readonly keyPem: string
}

/** What acme-certs.ts needs from an ACME client (tests give it a fake). */
export interface Orderer {
  order (host: string): Promise<OrderedCert>
  /** The key authorization for an HTTP-01 token while an order waits for it. */
  challenge (token: string): string | undefined
}

export interface AcmeClientOptions {
  readonly directoryUrl: string
  readonly email: string
  /** Extra CA certificates (PEM) to trust for the ACME server's own HTTPS, e.g. a test CA such as pebble. */
  readonly caPem?: string
  /** Where the account key lives (created 0700). */
  readonly accountDir: string
  readonly log?: Logger
}

type AcmeModule = typeof import('acme-client')

export class AcmeClientOrderer implements Orderer {
  readonly #options: AcmeClientOptions
  readonly #tokens = new Map<string, string>()
  #module: Promise<AcmeModule> | null = null
  #client: Client | null = null

  constructor (options: AcmeClientOptions) {
    this.#options = options
  }

  /** acme-client, loaded and set up on first use. */
  #acme (): Promise<AcmeModule> {
    this.#module ??= import('acme-client').then((loaded) => {
      // a CommonJS module: its exports object is the namespace's default
      const acme = (loaded as { default?: AcmeModule }).default ?? loaded
      // acme-client sends every request through its own module-level axios instance, so these settings are
      // process-wide for acme-client (and only for it). One gateway per process uses ACME.
      acme.axios.defaults.timeout = 30_000
      if (this.#options.caPem) acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, this.#options.caPem] })
      const log = this.#options.log
      if (log) acme.setLogger((message) => log.trace({ acme: message }, 'acme-client'))
      return acme
    })
    return this.#module
  }

  challenge (token: string): string | undefined {
    return this.#tokens.get(token)
  }

  async order (host: string): Promise<OrderedCert> {
    const acme = await this.#acme()
    const keyPem = newEcKeyPem()
    const [, csr] = await acme.crypto.createCsr({ ...(host.length <= MAX_CN_LENGTH ? { commonName: host } : {}), altNames: [host] }, keyPem)
    const certPem = await this.#account(acme).auto({
      csr,
      email: this.#options.email,
      // Configuring an ACME directory is the operator's agreement to that CA's terms (see README).
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // acme-client's self-check fetches the name on port 80; the CA's own validation is what counts.
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new Error(`the CA offers no http-01 challenge for ${host}`)
        this.#tokens.set(challenge.token, keyAuthorization)
      },
      challengeRemoveFn: async (_authz, challenge) => {
        this.#tokens.delete(challenge.token)
      },
    })
    return { certPem, keyPem }
  }

  /** One client (and account) per process; acme-client registers the account on its first order. */
  #account (acme: AcmeModule): Client {
    if (this.#client !== null) return this.#client
    this.#client = new acme.Client({
      directoryUrl: this.#options.directoryUrl,
      accountKey: loadOrCreateEcKey(join(this.#options.accountDir, ACCOUNT_KEY_FILE)),
      // Poll the order and challenge status from 1 s up to 10 s apart (acme-client's default starts at 5 s).
      backoffMin: 1000,
      backoffMax: 10_000,
      backoffAttempts: 10,
    })
    return this.#client
  }
}
