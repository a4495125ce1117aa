// Name holds saved in batches, off the event loop, and still crash-safe (identity/name-store.ts, issue 13).
// Batching: many changes within the window are one write of the latest holds; at most one write is in flight,
// changes made meanwhile go out in the next write; flush() (on close) writes what is left and waits for it.
// Crash safety: a child process saving state after state through the real file writes is SIGKILLed at a random
// moment; the file then parses to one complete state, no older than the last one the child saw written, and a
// registry restored from it has those names offline for their owners.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { MAX_DELAY_MS, NameStore } from '../../src/identity/name-store.js'
import { Registry, type Hold } from '../../src/core/registry.js'

const hold = (n: number): Hold => ({ host: `n${n}.example.com`, ownerId: `owner${n}`, random: false, slot: null, expiresAt: null })
const holdsUpTo = (n: number): Hold[] => Array.from({ length: n + 1 }, (_, i) => hold(i))

describe('name store batching', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'porthole-names-'))
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
    rmSync(dir, { recursive: true, force: true })
  })

  /** A writer whose writes finish when the test says so. */
  function slowWriter () {
    const writes: Array<{ text: string, done: () => void }> = []
    let inFlight = 0
    let maxInFlight = 0
    const write = (_path: string, text: string): Promise<void> => new Promise((resolve) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight)
      writes.push({ text, done: () => { inFlight--; resolve() } })
    })
    return { write, writes, maxInFlight: () => maxInFlight, holdsOf: (i: number) => (JSON.parse(writes[i]!.text) as { holds: Hold[] }).holds }
  }

  it('writes many changes within the window once, with the latest holds, read when the batch is written', async () => {
    const writer = slowWriter()
    const store = new NameStore(dir, (error) => { throw error }, 200, writer.write)
    let current = 0
    let reads = 0
    for (current = 0; current < 1000; current++) store.save(() => { reads++; return holdsUpTo(current) })
    expect(writer.writes).toHaveLength(0) // nothing written synchronously
    await vi.advanceTimersByTimeAsync(200)
    expect(writer.writes).toHaveLength(1)
    expect(reads).toBe(1)
    expect(writer.holdsOf(0)).toHaveLength(1001) // the state when written, not when first marked
  })

  it('keeps at most one write in flight; changes made meanwhile go out in the next write, the latest winning', async () => {
    const writer = slowWriter()
    const store = new NameStore(dir, (error) => { throw error }, 200, writer.write)
    store.save(holdsUpTo(0))
    await vi.advanceTimersByTimeAsync(200)
    expect(writer.writes).toHaveLength(1)
    store.save(holdsUpTo(1))
    store.save(holdsUpTo(2))
    await vi.advanceTimersByTimeAsync(1000)
    expect(writer.writes).toHaveLength(1) // the first is still in flight
    writer.writes[0]!.done()
    await vi.advanceTimersByTimeAsync(200)
    expect(writer.writes).toHaveLength(2)
    expect(writer.holdsOf(1)).toEqual(holdsUpTo(2))
    writer.writes[1]!.done()
    await vi.advanceTimersByTimeAsync(1000)
    expect(writer.writes).toHaveLength(2) // nothing changed since: no write
    expect(writer.maxInFlight()).toBe(1)
  })

  it('flush writes what is pending at once, after the write in flight, and resolves when it is done', async () => {
    const writer = slowWriter()
    const store = new NameStore(dir, (error) => { throw error }, 200, writer.write)
    store.save(holdsUpTo(0))
    await vi.advanceTimersByTimeAsync(200)
    store.save(holdsUpTo(5))
    let flushed = false
    const flushing = store.flush().then(() => { flushed = true })
    await vi.advanceTimersByTimeAsync(0)
    expect(writer.writes).toHaveLength(1)
    writer.writes[0]!.done()
    await vi.advanceTimersByTimeAsync(0)
    expect(writer.writes).toHaveLength(2) // no batch delay on flush
    expect(flushed).toBe(false)
    writer.writes[1]!.done()
    await flushing
    expect(writer.holdsOf(1)).toEqual(holdsUpTo(5))
  })

  it('widens the window with what the last write cost the event loop (about 1% of it), up to MAX_DELAY_MS', async () => {
    const writer = slowWriter()
    let clock = 0
    let costMs = 10 // what serialising the holds "takes" on the injected clock
    const store = new NameStore(dir, (error) => { throw error }, 200, writer.write, () => (clock += costMs))
    expect(store.delayMs).toBe(200)
    store.save(holdsUpTo(3))
    await vi.advanceTimersByTimeAsync(200)
    expect(writer.writes).toHaveLength(1)
    expect(store.delayMs).toBe(1000)
    writer.writes[0]!.done()
    store.save(holdsUpTo(4))
    await vi.advanceTimersByTimeAsync(999)
    expect(writer.writes).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(writer.writes).toHaveLength(2)
    costMs = 1000
    writer.writes[1]!.done()
    store.save(holdsUpTo(5))
    await vi.advanceTimersByTimeAsync(1000)
    expect(writer.writes).toHaveLength(3)
    expect(store.delayMs).toBe(MAX_DELAY_MS)
    costMs = 0
    writer.writes[2]!.done()
    store.save(holdsUpTo(6))
    await vi.advanceTimersByTimeAsync(MAX_DELAY_MS)
    expect(writer.writes).toHaveLength(4)
    expect(store.delayMs).toBe(200) // cheap again: back to the shortest window
  })

  it('reports a failed write and writes the next change anyway', async () => {
    const errors: Error[] = []
    let fail = true
    const written: string[] = []
    const store = new NameStore(dir, (error) => errors.push(error), 200, async (_path, text) => {
      if (fail) throw new Error('disk full')
      written.push(text)
    })
    store.save(holdsUpTo(0))
    await vi.advanceTimersByTimeAsync(200)
    expect(errors.map((e) => e.message)).toEqual(['disk full'])
    fail = false
    store.save(holdsUpTo(1))
    await vi.advanceTimersByTimeAsync(200)
    expect(written).toHaveLength(1)
  })

  it('writes a hold again with its new expiry after the registry changed it in place (cached JSON per hold)', async () => {
    const writer = slowWriter()
    const store = new NameStore(dir, (error) => { throw error }, 200, writer.write)
    const live = holdsUpTo(2)
    store.save(live)
    await vi.advanceTimersByTimeAsync(200)
    writer.writes[0]!.done()
    live[1]!.expiresAt = 123_456 // went offline: the registry sets the expiry on its own object
    store.save(live)
    await vi.advanceTimersByTimeAsync(200)
    expect(writer.holdsOf(1)).toEqual([hold(0), { ...hold(1), expiresAt: 123_456 }, hold(2)])
  })

  it('writes through the real file and reads back what it wrote', async () => {
    vi.useRealTimers()
    const store = new NameStore(dir, (error) => { throw error }, 10)
    store.save(holdsUpTo(3))
    await store.flush()
    expect(new NameStore(dir, () => {}).load()).toEqual(holdsUpTo(3))
  })

  it('removes temp files a crash left mid-write when it loads, and nothing else', async () => {
    vi.useRealTimers()
    const store = new NameStore(dir, (error) => { throw error }, 10)
    store.save(holdsUpTo(2))
    await store.flush()
    writeFileSync(join(dir, 'names.json.4242.1764480000000.7.tmp'), '{"holds": [')
    writeFileSync(join(dir, 'identity.json.4242.1764480000000.tmp'), 'not ours')
    expect(new NameStore(dir, () => {}).load()).toEqual(holdsUpTo(2))
    expect(readdirSync(dir).filter((f) => f.startsWith('names.json'))).toEqual(['names.json'])
    expect(readdirSync(dir)).toContain('identity.json.4242.1764480000000.tmp')
  })
})

describe('name store crash safety', () => {
  it('a SIGKILL between or during writes leaves the last complete state, which a registry restores', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-names-crash-'))
    try {
      // The child saves state after state (n0..ni) through the real files; it prints i once state i is on disk.
      // It runs the built store (dist/: `npm test` builds it first).
      const store = resolve(import.meta.dirname, '../../dist/identity/name-store.js')
      const script = `
        const { NameStore } = await import(${JSON.stringify(store)})
        const hold = (n) => ({ host: 'n' + n + '.example.com', ownerId: 'owner' + n, random: false, slot: null, expiresAt: null })
        const store = new NameStore(${JSON.stringify(dir)}, (e) => { console.error(e); process.exit(1) }, 5)
        for (let i = 0; ; i++) {
          const holds = Array.from({ length: i + 1 }, (_, n) => hold(n))
          store.save(holds)
          if (i % 7 === 0) { await store.flush(); process.stdout.write(i + '\\n') }
          await new Promise((r) => setImmediate(r))
        }`
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.setEncoding('utf8').on('data', (text: string) => { out += text })
      child.stderr.setEncoding('utf8').on('data', (text: string) => { err += text })
      const flushedCount = (): number => out.split('\n').filter(Boolean).length
      const deadline = Date.now() + 30_000
      const target = 20 + Math.floor(Math.random() * 40)
      while (flushedCount() < target && Date.now() < deadline && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 5))
      const exited = child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      expect(flushedCount(), err).toBeGreaterThanOrEqual(target)
      const lastFlushed = Number(out.split('\n').filter(Boolean).at(-1))
      // The file is whole JSON (read raw, not through load(), which would hide a torn file as empty).
      const saved = (JSON.parse(readFileSync(join(dir, 'names.json'), 'utf8')) as { holds: Hold[] }).holds
      expect(saved.length).toBeGreaterThan(lastFlushed) // no older than the last state known written
      expect(saved).toEqual(holdsUpTo(saved.length - 1)) // one complete state
      const registry = new Registry({ domain: 'example.com', graceMs: 60_000 })
      registry.restore(new NameStore(dir, () => {}).load())
      expect(registry.lookup(`n${lastFlushed}.example.com`).state).toBe('offline')
      expect(registry.holds()).toHaveLength(saved.length)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
