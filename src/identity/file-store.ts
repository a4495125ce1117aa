// The identity store as one JSON file in the data dir (`identity.json`). Every change is written whole with
// storage/files.ts replaceFile (temp file, fsync, rename, directory fsync) before `update` resolves: a crash
// leaves the old or the new file, and whatever was acknowledged is on disk. Writers in several processes
// (the server, `porthole api-keys create` run offline) take a lock file and re-read the file before changing
// it, so neither loses the other's change. Changes arriving while a write is under way go together in the
// next write (group commit), so a burst of API calls costs a few fsyncs, not one each.
import { randomUUID } from 'node:crypto'
import { linkSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PortholeError } from '../core/errors.js'
import { ensureDataDir, replaceFile } from '../storage/files.js'
import { emptyIdentityData, hasCredentials, type IdentityData, type IdentityStore } from './model.js'

interface Pending {
  change: (data: IdentityData) => unknown
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

const LOCK_WAIT_MS = 5000
const LOCK_STALE_MS = 30_000
/** Lock files this process holds right now (several stores may share a process, as in tests). */
const heldLocks = new Set<string>()
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
    return hasCredentials(JSON.parse(readFileSync(join(dataDir, 'identity.json'), 'utf8')) as Partial<IdentityData>)
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
  #lockToken = ''

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

  /**
   * The lock file holds `<pid> <nonce>`. A lock is stale (its holder crashed mid-write) when that process is
   * gone, when it names this process but not a lock this process holds (a restart that got the same pid, as
   * PID 1 in a container does), or when it is older than LOCK_STALE_MS (a write takes milliseconds; so does
   * a lock still empty because its holder has not written its name yet). A stale
   * lock is moved aside under a unique name and checked to be the one judged stale before it is deleted, so
   * two processes taking it over at once cannot delete each other's fresh lock.
   */
  async #acquireLock (): Promise<void> {
    const deadline = Date.now() + LOCK_WAIT_MS
    const token = `${process.pid} ${randomUUID()}`
    for (;;) {
      if (this.#tryLock(token)) {
        this.#lockToken = token
        heldLocks.add(this.#lock)
        return
      }
      let content = ''
      let ageMs = 0
      try {
        content = readFileSync(this.#lock, 'utf8')
        ageMs = Date.now() - statSync(this.#lock).mtimeMs
      } catch {
        continue // gone meanwhile: try again
      }
      // An empty (or half-written) lock cannot come from #tryLock, which links a finished file into place; one
      // left by an older build (its 'wx' created the file before writing it) waits for LOCK_STALE_MS. Judged
      // stale at once, such a lock was deleted under its new holder and two writers lost each other's changes.
      const holder = Number(content.split(' ')[0])
      const named = Number.isInteger(holder) && holder > 0
      const stale = ageMs > LOCK_STALE_MS ||
        (named && (!isAlive(holder) || (holder === process.pid && !heldLocks.has(this.#lock))))
      if (stale) {
        this.#takeOver(content)
        continue
      }
      if (Date.now() > deadline) throw new PortholeError('PH_5008', `${this.#lock} is held by process ${holder}`)
      await sleep(20)
    }
  }

  /**
   * Creates the lock with `token` already in it: written to a file of its own, then linked into place (link fails
   * if the lock exists). With 'wx' the lock existed empty until its content was written, and a process killed in
   * between left an empty lock that held every writer off for LOCK_STALE_MS (a restart after a crash got 503).
   */
  #tryLock (token: string): boolean {
    const draft = `${this.#lock}.${process.pid}.${randomUUID()}.new`
    writeFileSync(draft, token, { flag: 'wx', mode: 0o600 })
    try {
      linkSync(draft, this.#lock)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      return false
    } finally {
      try { unlinkSync(draft) } catch {}
    }
  }

  #takeOver (judged: string): void {
    const aside = `${this.#lock}.${process.pid}.${randomUUID()}`
    try {
      renameSync(this.#lock, aside)
    } catch {
      return // someone else moved it first
    }
    try {
      // Not the lock judged stale (a new holder replaced it in between): put it back.
      if (readFileSync(aside, 'utf8') !== judged) linkSync(aside, this.#lock)
    } catch {}
    try { unlinkSync(aside) } catch {}
  }

  #releaseLock (): void {
    heldLocks.delete(this.#lock)
    try {
      // Only our own lock: had it been taken over (a pause past LOCK_STALE_MS), the file is someone else's.
      if (readFileSync(this.#lock, 'utf8') === this.#lockToken) unlinkSync(this.#lock)
    } catch {}
  }

  #emit (): void {
    for (const listener of this.#listeners) listener()
  }
}
