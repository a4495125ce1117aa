// The identity store as one JSON file in the data dir (`identity.json`). Every change is written whole with
// storage/files.ts replaceFile (temp file, fsync, rename, directory fsync) before `update` resolves: a crash
// leaves the old or the new file, and whatever was acknowledged is on disk. Writers in several processes
// (the server, `porthole api-keys create` run offline) take a lock file and re-read the file before changing
// it, so neither loses the other's change. Changes arriving while a write is under way go together in the
// next write (group commit), so a burst of API calls costs a few fsyncs, not one each.
import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PortholeError } from '../core/errors.js'
import { ensureDataDir, replaceFile } from '../storage/files.js'
import { emptyIdentityData, type IdentityData, type IdentityStore } from './model.js'

interface Pending {
  change: (data: IdentityData) => unknown
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

const LOCK_WAIT_MS = 5000
const STAT_EVERY_MS = 250

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Whether the store in `dataDir` holds any key or authtoken (read without creating anything). */
export function storedCredentialsExist (dataDir: string): boolean {
  try {
    const data = JSON.parse(readFileSync(join(dataDir, 'identity.json'), 'utf8')) as Partial<IdentityData>
    return (data.keys?.length ?? 0) > 0 || (data.tokens?.length ?? 0) > 0
  } catch {
    return false
  }
}

export class FileIdentityStore implements IdentityStore {
  readonly #file: string
  readonly #lock: string
  readonly #listeners: Array<() => void> = []
  readonly #onError: (error: Error) => void
  #data: IdentityData
  /** The file as we last read or wrote it successfully (inode, size, mtime). */
  #stamp = ''
  /** The file as read() last looked at it (differs from #stamp while the file is broken). */
  #seen = ''
  #checkedAt = 0
  #queue: Pending[] = []
  #committing: Promise<void> | null = null

  /** onError: the file became unreadable while running (the last good data is kept). */
  constructor (dataDir: string, onError: (error: Error) => void = () => {}) {
    this.#onError = onError
    this.#file = join(dataDir, 'identity.json')
    this.#lock = `${this.#file}.lock`
    ensureDataDir(dataDir)
    this.#data = this.#load()
  }

  get file (): string {
    return this.#file
  }

  read (): IdentityData {
    // Another process (an offline `porthole api-keys create`) may have written: look at most every 250 ms.
    const now = Date.now()
    if (now - this.#checkedAt >= STAT_EVERY_MS && !this.#committing) {
      this.#checkedAt = now
      const current = this.#currentStamp()
      if (current !== this.#seen) {
        this.#seen = current
        try {
          this.#data = this.#load()
          this.#emit()
        } catch (error) {
          // Someone wrote a broken file while we run: keep serving what we had (logins must not crash the
          // gateway), say so once per change of the file, and refuse writes until it is fixed (#commit).
          this.#onError(error as Error)
        }
      }
    }
    return this.#data
  }

  update<T> (change: (data: IdentityData) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ change, resolve: resolve as (value: unknown) => void, reject })
      this.#committing ??= this.#commitAll()
    })
  }

  onChange (listener: () => void): void {
    this.#listeners.push(listener)
  }

  async close (): Promise<void> {
    while (this.#committing) await this.#committing
  }

  async #commitAll (): Promise<void> {
    // Let the changes of this tick join the batch.
    await new Promise((resolve) => setImmediate(resolve))
    while (this.#queue.length > 0) {
      const batch = this.#queue
      this.#queue = []
      await this.#commit(batch)
    }
    this.#committing = null
  }

  async #commit (batch: Pending[]): Promise<void> {
    const outcomes: Array<{ ok: true, value: unknown } | { ok: false, error: unknown }> = []
    try {
      await this.#acquireLock()
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    }
    let changed = false
    try {
      if (this.#currentStamp() !== this.#stamp) this.#data = this.#load()
      let working = this.#data
      for (const pending of batch) {
        // Each change works on its own copy, so one that throws half-way leaves nothing behind.
        const copy = structuredClone(working)
        try {
          outcomes.push({ ok: true, value: pending.change(copy) })
          working = copy
          changed = true
        } catch (error) {
          outcomes.push({ ok: false, error })
        }
      }
      if (changed) {
        this.#write(working)
        this.#data = working
      }
    } catch (error) {
      const failure = new PortholeError('PH_5008', (error as Error).message)
      for (const pending of batch) pending.reject(failure)
      return
    } finally {
      this.#releaseLock()
    }
    batch.forEach((pending, index) => {
      const outcome = outcomes[index]!
      if (outcome.ok) pending.resolve(outcome.value)
      else pending.reject(outcome.error)
    })
    if (changed) this.#emit()
  }

  #write (data: IdentityData): void {
    replaceFile(this.#file, `${JSON.stringify(data, null, 1)}\n`, 0o600)
    this.#stamp = this.#currentStamp()
    this.#seen = this.#stamp
  }

  /** Reads the file; only a successful read moves #stamp (a broken file is never taken as the base of a write). */
  #load (): IdentityData {
    const stamp = this.#currentStamp()
    let text: string
    try {
      text = readFileSync(this.#file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new PortholeError('PH_2002', `cannot read ${this.#file}: ${(error as Error).message}`)
      text = '{}'
    }
    let data: Partial<IdentityData>
    try {
      data = JSON.parse(text) as Partial<IdentityData>
    } catch (error) {
      // Never start over an unreadable store: that would silently drop every account.
      throw new PortholeError('PH_2002', `${this.#file} is not valid JSON (${(error as Error).message}); restore it from a backup`)
    }
    const loaded = { ...emptyIdentityData(), ...data, version: 1 as const }
    for (const name of ['accounts', 'keys', 'tokens', 'reservations', 'apiKeys'] as const) {
      if (!Array.isArray(loaded[name])) throw new PortholeError('PH_2002', `${this.#file}: "${name}" is not a list; restore it from a backup`)
    }
    this.#stamp = stamp
    this.#seen = stamp
    return loaded
  }

  #currentStamp (): string {
    try {
      const stat = statSync(this.#file)
      return `${stat.ino}:${stat.size}:${stat.mtimeMs}`
    } catch {
      return 'missing'
    }
  }

  async #acquireLock (): Promise<void> {
    const deadline = Date.now() + LOCK_WAIT_MS
    for (;;) {
      try {
        writeFileSync(this.#lock, String(process.pid), { flag: 'wx', mode: 0o600 })
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      // A lock left by a process that died (killed mid-write) is taken over.
      let holder = NaN
      try {
        holder = Number(readFileSync(this.#lock, 'utf8'))
      } catch {}
      if (Number.isInteger(holder) && holder > 0 && !isAlive(holder)) {
        try { unlinkSync(this.#lock) } catch {}
        continue
      }
      if (Date.now() > deadline) throw new PortholeError('PH_5008', `${this.#lock} is held by process ${holder}`)
      await sleep(20)
    }
  }

  #releaseLock (): void {
    try { unlinkSync(this.#lock) } catch {}
  }

  #emit (): void {
    for (const listener of this.#listeners) listener()
  }
}
