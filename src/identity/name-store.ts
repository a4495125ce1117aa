// Keeps name holds across restarts: one JSON file in the data dir, replaced atomically (storage/files.ts)
// so a crash leaves either the old or the new file, never half of one. Writes are coalesced: the registry
// may change many times a second, the file is written at most every `delayMs`.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { replaceFile } from '../storage/files.js'
import type { Hold } from '../core/registry.js'

export class NameStore {
  readonly #file: string
  readonly #delayMs: number
  #pending: Hold[] | null = null
  #timer: NodeJS.Timeout | null = null

  readonly #onError: (error: Error) => void

  /** onError: a failed write (disk full, permissions) is reported, never thrown from a timer. */
  constructor (dataDir: string, onError: (error: Error) => void, delayMs = 200) {
    this.#file = join(dataDir, 'names.json')
    this.#onError = onError
    this.#delayMs = delayMs
  }

  load (): Hold[] {
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

  save (holds: Hold[]): void {
    this.#pending = holds
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      try {
        this.flush()
      } catch (error) {
        this.#onError(error as Error)
      }
    }, this.#delayMs)
    this.#timer.unref()
  }

  flush (): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    const holds = this.#pending
    if (!holds) return
    this.#pending = null
    replaceFile(this.#file, JSON.stringify({ version: 1, holds }, null, 1), 0o600)
  }
}
