// Keeps name holds across restarts: one JSON file in the data dir, replaced atomically (storage/files.ts: temp
// file, fsync, rename, fsync of the directory) so a crash leaves either the old or the new file, never half of
// one. Writes never block the event loop and are coalesced: the registry may change thousands of times a
// second, so a change only marks the holds dirty; `delayMs` after the first change of a batch the latest holds
// are read and written on the thread pool. At most one write is in flight; changes made meanwhile are written
// by the next one (the latest state wins). A crash loses at most the changes of the last `delayMs` plus the
// time one write takes (the batch being written, and the one waiting behind it); close() writes what is left.
// Each hold's JSON is kept from one write to the next (keyed by the registry's own hold object and its expiry),
// so a write with 10,000 holds joins strings instead of serialising every hold again. Still, a write costs the
// event loop time in proportion to the holds (10,000: ~7 ms to join and encode ~2 MB), and while names change it
// comes every window: so the window grows with what the last write cost, to keep writing under ~1% of the event
// loop (COST_FACTOR): 200 ms up to a few thousand holds, ~0.7 s at 10,000, at most MAX_DELAY_MS. A crash then
// loses at most that window's changes (plus one write), never a whole file.
import { readdirSync, readFileSync, unlinkSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { replaceFileAsync } from '../storage/files.js'
import type { Hold } from '../core/registry.js'

export type WriteFile = (path: string, text: string, mode: number) => Promise<void>

/** The window is at least this many times what the last write took the event loop (serialising the holds). */
const COST_FACTOR = 100
/** The longest window, however many holds. */
export const MAX_DELAY_MS = 5000

export class NameStore {
  readonly #file: string
  readonly #delayMs: number
  readonly #write: WriteFile
  readonly #onError: (error: Error) => void
  /** Reads the holds to write; set by save() since the last write began. */
  #dirty: (() => Iterable<Readonly<Hold>>) | null = null
  /** The JSON of each hold as last written, while its expiry is the same. */
  readonly #fragments = new WeakMap<Readonly<Hold>, { expiresAt: number | null, json: string }>()
  #timer: NodeJS.Timeout | null = null
  #writing: Promise<void> | null = null
  readonly #now: () => number
  /** ms the last write's serialisation took the event loop. */
  #cost = 0

  /** onError: a failed write (disk full, permissions) is reported, never thrown from a timer. */
  constructor (dataDir: string, onError: (error: Error) => void, delayMs = 200, write: WriteFile = replaceFileAsync, now: () => number = () => performance.now()) {
    this.#now = now
    this.#file = join(dataDir, 'names.json')
    this.#onError = onError
    this.#delayMs = delayMs
    this.#write = write
  }

  /** The batch window now: a crash loses at most the changes of this long (plus one write). */
  get delayMs (): number {
    return Math.min(MAX_DELAY_MS, Math.max(this.#delayMs, COST_FACTOR * this.#cost))
  }

  /** Temp files a crash left mid-write (only this gateway writes names.json, and it has not written yet). */
  #removeStaleTemps (): void {
    const dir = dirname(this.#file)
    const prefix = `${basename(this.#file)}.`
    let entries: string[]
    try {
      entries = readdirSync(dir)
    } catch {
      return
    }
    for (const entry of entries) {
      if (entry.startsWith(prefix) && entry.endsWith('.tmp')) {
        try { unlinkSync(join(dir, entry)) } catch {}
      }
    }
  }

  load (): Hold[] {
    this.#removeStaleTemps()
    let text: string
    try {
      text = readFileSync(this.#file, 'utf8')
    } catch {
      return []
    }
    try {
      const data = JSON.parse(text) as { holds?: Hold[] }
      return Array.isArray(data.holds) ? data.holds.filter((h) => typeof h.host === 'string' && typeof h.ownerId === 'string') : []
    } catch {
      return []
    }
  }

  /** Marks the holds changed: `holds` (or what the function returns when the batch is written) will be saved. */
  save (holds: Iterable<Readonly<Hold>> | (() => Iterable<Readonly<Hold>>)): void {
    this.#dirty = typeof holds === 'function' ? holds : () => holds
    if (this.#timer === null && this.#writing === null) this.#schedule()
  }

  /** Writes what is pending now (waiting for a write in flight first); resolves once it is on disk. */
  async flush (): Promise<void> {
    for (;;) {
      if (this.#timer !== null) {
        clearTimeout(this.#timer)
        this.#timer = null
      }
      if (this.#writing !== null) {
        await this.#writing
        continue
      }
      if (this.#dirty === null) return
      this.#start()
    }
  }

  #schedule (): void {
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#start()
    }, this.delayMs)
    this.#timer.unref()
  }

  /** `{"version":1,"holds":[...]}` from cached per-hold JSON. */
  #serialize (holds: Iterable<Readonly<Hold>>): string {
    const parts: string[] = []
    for (const hold of holds) {
      let fragment = this.#fragments.get(hold)
      if (fragment === undefined || fragment.expiresAt !== hold.expiresAt) {
        fragment = { expiresAt: hold.expiresAt, json: JSON.stringify(hold) }
        this.#fragments.set(hold, fragment)
      }
      parts.push(fragment.json)
    }
    return `{"version":1,"holds":[${parts.join(',')}]}`
  }

  #start (): void {
    const read = this.#dirty
    if (read === null) return
    this.#dirty = null
    let text: string
    const started = this.#now()
    try {
      text = this.#serialize(read())
    } catch (error) {
      this.#onError(error as Error)
      return
    } finally {
      this.#cost = this.#now() - started
    }
    this.#writing = this.#write(this.#file, text, 0o600).catch((error: Error) => this.#onError(error)).finally(() => {
      this.#writing = null
      if (this.#dirty !== null && this.#timer === null) this.#schedule()
    })
  }
}
