// Bring-your-own certificates: a directory of `<host>.crt` / `<host>.key` PEM pairs, watched and reloaded
// while the gateway runs. A wildcard certificate is named `_wildcard.<suffix>.crt` (mkcert's convention: no
// `*` in file names) and covers every name one label under the suffix. They win over ACME and the local CA.
// A bad pair is skipped and reported with its file name; the pair loaded before for that name stays in use.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs'
import { join } from 'node:path'
import type { SecureContext } from 'node:tls'
import type { Logger } from 'pino'
import { assertCertHost } from './cert-host.js'
import { covers, loadPair } from './cert-pair.js'

const WILDCARD_PREFIX = '_wildcard.'

/** The catalogue codes the certs layer reports (core/errors formats them; certs imports nothing above it). */
export type CertCode = 'PH_4001' | 'PH_4002' | 'PH_4003'
export type CertReport = (code: CertCode, detail: string, fields?: Record<string, unknown>) => void

export interface ByoCertsOptions {
  readonly dir: string
  readonly log?: Logger
  readonly report?: CertReport
  /** Changes are read this long after the last file event (editors and cp write in several steps). */
  readonly debounceMs?: number
  readonly now?: () => number
}

interface Entry {
  readonly context: SecureContext
  readonly notAfter: number
  readonly fingerprint: string
  readonly file: string
}

/** The host (or `*.suffix` pattern) a `.crt` file name stands for, or null when the name is not one. */
export function hostOfFile (file: string): string | null {
  if (!file.endsWith('.crt')) return null
  const stem = file.slice(0, -'.crt'.length).toLowerCase()
  const host = stem.startsWith(WILDCARD_PREFIX) ? `*.${stem.slice(WILDCARD_PREFIX.length)}` : stem
  try {
    assertCertHost(host)
  } catch {
    return null
  }
  return host
}

export class ByoCerts {
  readonly dir: string
  readonly #log: Logger | undefined
  readonly #report: CertReport
  readonly #debounceMs: number
  readonly #now: () => number
  #entries = new Map<string, Entry>()
  /** Files reported bad, with their state then: a rescan reports a pair again only once it changed. */
  #reported = new Map<string, string>()
  #watcher: FSWatcher | null = null
  #timer: NodeJS.Timeout | null = null

  /** Reads the directory once (it must exist) and starts watching it. */
  constructor (options: ByoCertsOptions) {
    this.dir = options.dir
    this.#log = options.log
    this.#report = options.report ?? (() => {})
    this.#debounceMs = options.debounceMs ?? 250
    this.#now = options.now ?? Date.now
    let isDirectory = false
    try { isDirectory = statSync(this.dir).isDirectory() } catch {}
    if (!isDirectory) throw new Error(`certs dir ${this.dir} does not exist or is not a directory`)
    this.reload()
    this.#watcher = watch(this.dir, { persistent: false }, () => this.#schedule())
    this.#watcher.on('error', (error) => this.#log?.warn({ dir: this.dir, err: error.message }, 'certs dir: watching stopped'))
  }

  get size (): number {
    return this.#entries.size
  }

  /** When each loaded certificate expires (epoch ms), for metrics. */
  expiries (): number[] {
    return [...this.#entries.values()].map((entry) => entry.notAfter)
  }

  /** The context for a TLS server name: its own certificate first, then a wildcard one covering it. */
  lookup (serverName: string): SecureContext | undefined {
    if (this.#entries.size === 0) return undefined
    const name = serverName.toLowerCase()
    const now = this.#now()
    const exact = this.#entries.get(name)
    if (exact && exact.notAfter > now) return exact.context
    const dot = name.indexOf('.')
    if (dot === -1) return undefined
    const wildcard = this.#entries.get(`*${name.slice(dot)}`)
    return wildcard && wildcard.notAfter > now ? wildcard.context : undefined
  }

  /** Reads every pair in the directory again (what a file event triggers, after the debounce). */
  reload (): void {
    let files: string[]
    try {
      files = readdirSync(this.dir)
    } catch (error) {
      this.#log?.warn({ dir: this.dir, err: (error as Error).message }, 'certs dir unreadable; keeping the certificates loaded before')
      return
    }
    const present = new Set(files)
    const next = new Map<string, Entry>()
    const reported = new Map<string, string>()
    for (const file of files) {
      const host = hostOfFile(file)
      if (host === null) continue
      const entry = this.#read(host, file, present, reported)
      const previous = this.#entries.get(host)
      if (entry) {
        next.set(host, entry)
        if (previous?.fingerprint !== entry.fingerprint) {
          this.#log?.info({ host, file: join(this.dir, file), notAfter: new Date(entry.notAfter).toISOString() }, previous ? 'certificate replaced' : 'certificate loaded')
        }
      } else if (previous && present.has(previous.file)) {
        next.set(host, previous) // half-written or broken replacement: keep serving the good one
      }
    }
    for (const [host, previous] of this.#entries) {
      if (!next.has(host)) this.#log?.info({ host, file: join(this.dir, previous.file) }, 'certificate removed')
    }
    this.#entries = next
    this.#reported = reported
  }

  #read (host: string, file: string, present: Set<string>, reported: Map<string, string>): Entry | null {
    const certPath = join(this.dir, file)
    const keyFile = `${file.slice(0, -'.crt'.length)}.key`
    const keyPath = join(this.dir, keyFile)
    const skip = (reason: string): null => {
      const state = `${fileState(certPath)} ${fileState(keyPath)}`
      reported.set(file, state)
      if (this.#reported.get(file) === state) return null // unchanged since it was reported
      const kept = this.#entries.has(host)
      this.#report('PH_4001', `${certPath}: ${reason}${kept ? '; the certificate loaded before stays in use' : ''}`, { file: certPath, host })
      return null
    }
    if (!present.has(keyFile)) return skip(`no key file ${keyFile} beside it`)
    let certPem: string
    let keyPem: string
    try {
      certPem = readFileSync(certPath, 'utf8')
      keyPem = readFileSync(keyPath, 'utf8')
    } catch (error) {
      return skip((error as Error).message)
    }
    let pair
    try {
      pair = loadPair(certPem, keyPem)
    } catch (error) {
      return skip((error as Error).message)
    }
    if (!covers(pair.leaf, host)) return skip(`the certificate does not cover ${host} (the name its file stands for)`)
    if (pair.notAfter <= this.#now()) return skip(`the certificate expired on ${new Date(pair.notAfter).toISOString()}`)
    return { context: pair.context, notAfter: pair.notAfter, fingerprint: pair.leaf.fingerprint256, file }
  }

  #schedule (): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.reload()
    }, this.#debounceMs)
    this.#timer.unref()
  }

  close (): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#watcher?.close()
    this.#watcher = null
  }
}

function fileState (path: string): string {
  try {
    const stat = statSync(path)
    return `${stat.mtimeMs}:${stat.size}:${stat.ino}`
  } catch {
    return 'none'
  }
}
