import { describe, expect, it } from 'vitest'
import { channel } from 'node:diagnostics_channel'
import { INSPECT_REQUEST_CHANNEL, MemoryInspectStore, recordSize } from '../../src/inspect/store.js'
import type { CapturedRequest } from '../../src/inspect/record.js'

let seq = 0
function record (ownerId: string, options: { body?: number, tunnelName?: string } = {}): CapturedRequest {
  seq++
  return {
    id: `req_${String(seq).padStart(8, '0')}`,
    ownerId,
    endpointId: 'ep_1',
    tunnelName: options.tunnelName ?? 'a.localhost',
    remoteAddr: '127.0.0.1:1234',
    start: new Date().toISOString(),
    durationMs: 1,
    request: { method: 'GET', proto: 'HTTP/1.1', uri: '/', headers: { host: ['a.localhost'] }, body: Buffer.alloc(options.body ?? 0), bodySize: options.body ?? 0, truncated: false },
    response: { status: '200 OK', statusCode: 200, proto: 'HTTP/1.1', headers: {}, body: Buffer.alloc(0), bodySize: 0, truncated: false },
  }
}

describe('MemoryInspectStore', () => {
  it('lists newest first, with limit and tunnelName filter', () => {
    const store = new MemoryInspectStore()
    const a = record('o1')
    const b = record('o1', { tunnelName: 'b.localhost' })
    const c = record('o1')
    for (const r of [a, b, c]) store.add(r)
    expect(store.list('o1').map((r) => r.id)).toEqual([c.id, b.id, a.id])
    expect(store.list('o1', { limit: 2 }).map((r) => r.id)).toEqual([c.id, b.id])
    expect(store.list('o1', { tunnelName: 'b.localhost' }).map((r) => r.id)).toEqual([b.id])
    expect(store.get('o1', a.id)).toBe(a)
    // get() does not reorder
    expect(store.list('o1').map((r) => r.id)).toEqual([c.id, b.id, a.id])
  })

  it('keeps owners apart and clears one owner only', () => {
    const store = new MemoryInspectStore()
    const mine = record('o1')
    const theirs = record('o2')
    store.add(mine)
    store.add(theirs)
    expect(store.list('o1')).toEqual([mine])
    expect(store.get('o1', theirs.id)).toBeUndefined()
    store.clear('o1')
    expect(store.list('o1')).toEqual([])
    expect(store.list('o2')).toEqual([theirs])
  })

  it('evicts the oldest records past the per-owner count', () => {
    const store = new MemoryInspectStore({ maxRecordsPerOwner: 3 })
    const records = Array.from({ length: 5 }, () => record('o1'))
    for (const r of records) store.add(r)
    expect(store.list('o1').map((r) => r.id)).toEqual([records[4]!.id, records[3]!.id, records[2]!.id])
  })

  it('evicts the oldest records past the per-owner bytes, and accounts the bytes', () => {
    const one = recordSize(record('x', { body: 10_000 }))
    const store = new MemoryInspectStore({ maxBytesPerOwner: one * 3 })
    const records = Array.from({ length: 5 }, () => record('o1', { body: 10_000 }))
    for (const r of records) store.add(r)
    expect(store.list('o1').map((r) => r.id)).toEqual([records[4]!.id, records[3]!.id, records[2]!.id])
    expect(store.totalBytes).toBe(one * 3)
    store.clear('o1')
    expect(store.totalBytes).toBe(0)
  })

  it('drops the least recently active owner past maxOwners', () => {
    const store = new MemoryInspectStore({ maxOwners: 2 })
    store.add(record('o1'))
    store.add(record('o2'))
    store.add(record('o1')) // o1 active again: o2 is now the least recent
    store.add(record('o3'))
    expect(store.list('o2')).toEqual([])
    expect(store.list('o1')).toHaveLength(2)
    expect(store.list('o3')).toHaveLength(1)
    expect(store.ownerCount).toBe(2)
  })

  it('bounds the total bytes across owners', () => {
    const one = recordSize(record('x', { body: 10_000 }))
    const store = new MemoryInspectStore({ maxBytesPerOwner: one * 2, maxTotalBytes: one * 3 })
    store.add(record('o1', { body: 10_000 }))
    store.add(record('o1', { body: 10_000 }))
    store.add(record('o2', { body: 10_000 }))
    store.add(record('o2', { body: 10_000 }))
    expect(store.totalBytes).toBeLessThanOrEqual(one * 3)
    expect(store.list('o1')).toEqual([])
    expect(store.list('o2')).toHaveLength(2)
  })

  it('tells subscribers of their owner only; a throwing listener breaks nothing; unsubscribe stops it', () => {
    const store = new MemoryInspectStore()
    const seen: string[] = []
    store.subscribe('o1', () => { throw new Error('listener bug') })
    const stop = store.subscribe('o1', (r) => seen.push(r.id))
    const a = record('o1')
    expect(() => store.add(a)).not.toThrow()
    store.add(record('o2'))
    stop()
    store.add(record('o1'))
    expect(seen).toEqual([a.id])
    expect(store.list('o1')).toHaveLength(2)
  })

  it('publishes each record on the diagnostics channel', () => {
    const store = new MemoryInspectStore()
    const seen: unknown[] = []
    const onMessage = (message: unknown): void => { seen.push(message) }
    channel(INSPECT_REQUEST_CHANNEL).subscribe(onMessage)
    const a = record('o1')
    store.add(a)
    channel(INSPECT_REQUEST_CHANNEL).unsubscribe(onMessage)
    expect(seen).toEqual([a])
  })

  it('refuses nonsense bounds', () => {
    expect(() => new MemoryInspectStore({ maxRecordsPerOwner: 0 })).toThrow(RangeError)
  })
})
