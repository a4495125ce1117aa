// The registry's name holds with the indexes that keep each bind and unbind O(1) in the number of holds (issue
// 13: setup CPU grew with every tunnel up, from scans and copies of all holds). Besides the holds by name:
// - by owner (an owner's holds are few, bounded by the per-owner budget),
// - by bare name and by every name above one (a name's neighbours on its line of descent: the cookie rule),
// - the offline holds of each class (known, anonymous) in the order their grace ends, which is the order they
//   went offline: the oldest is the first, and lapsed ones are dropped from the front.
// Expiry is `now + grace` with one grace per class, so going offline later means lapsing later; only a clock
// that steps back breaks that order, and then the class is sorted again before it is used.
import { bareName, wildcardsFor } from './names.js'
import type { Hold } from './registry.js'

export class HoldIndex {
  readonly #domain: string
  readonly #holds = new Map<string, Hold>()
  readonly #byOwner = new Map<string, Set<Hold>>()
  /** Holds by their bare name (`*.a.b` and `a.b` both under `a.b`). */
  readonly #byBare = new Map<string, Set<Hold>>()
  /** Holds by each name strictly above their bare name (up to, not including, the base domain). */
  readonly #below = new Map<string, Set<Hold>>()
  /** Offline holds per class, in the order their grace ends; `unordered` once a clock step broke that. */
  readonly #offline = { known: new Map<string, Hold>(), anonymous: new Map<string, Hold>() }
  readonly #unordered = { known: false, anonymous: false }
  /** The latest expiry appended to each class's offline holds (an earlier one after it breaks the order). */
  readonly #latest = { known: -Infinity, anonymous: -Infinity }
  readonly #count = { known: 0, anonymous: 0 }

  constructor (domain: string) {
    this.#domain = domain
  }

  get (key: string): Hold | undefined {
    return this.#holds.get(key)
  }

  values (): IterableIterator<Hold> {
    return this.#holds.values()
  }

  entries (): IterableIterator<[string, Hold]> {
    return this.#holds.entries()
  }

  /** Adds or replaces the hold on `hold.host` (a replaced one keeps its place in the iteration order). */
  set (hold: Hold): void {
    const previous = this.#holds.get(hold.host)
    if (previous) this.#unindex(previous)
    this.#holds.set(hold.host, hold)
    this.#index(hold)
  }

  delete (key: string): void {
    const hold = this.#holds.get(key)
    if (!hold) return
    this.#unindex(hold)
    this.#holds.delete(key)
  }

  /** Starts a hold's grace period: it lapses at `expiresAt`. */
  setOffline (hold: Hold, expiresAt: number): void {
    const offline = this.#offline[classOf(hold)]
    offline.delete(hold.host)
    hold.expiresAt = expiresAt
    this.#addOffline(hold)
  }

  /** The holds of one owner (bounded by the per-owner budget). */
  ownedBy (ownerId: string): ReadonlySet<Hold> {
    return this.#byOwner.get(ownerId) ?? EMPTY
  }

  /** How many holds the class has (bound or offline). */
  countOf (anonymous: boolean): number {
    return this.#count[anonymous ? 'anonymous' : 'known']
  }

  /** The class's hold whose grace ends first; undefined when all of them are bound. */
  oldestOffline (anonymous: boolean): Hold | undefined {
    const name = anonymous ? 'anonymous' : 'known'
    this.#sortIfNeeded(name)
    return this.#offline[name].values().next().value
  }

  /** Drops the holds whose grace ended by `now`. */
  prune (now: number): void {
    for (const name of ['known', 'anonymous'] as const) {
      this.#sortIfNeeded(name)
      for (const hold of this.#offline[name].values()) {
        if (hold.expiresAt! > now) break
        this.delete(hold.host)
      }
    }
  }

  /** Holds on `host` itself or on a wildcard covering it (what `covers(hold.host, host)` accepts). */
  * coveringOrEqual (host: string): Generator<Hold> {
    const exact = this.#holds.get(host)
    if (exact) yield exact
    for (const pattern of wildcardsFor(bareName(host))) {
      const hold = this.#holds.get(pattern)
      if (hold) yield hold
    }
  }

  /** Name holds on one line of descent with `host` (what `nested(hold.host, host)` accepts), tcp ports aside. */
  * nestedWith (host: string): Generator<Hold> {
    const bare = bareName(host)
    for (let name: string | undefined = bare; name !== undefined; name = parentOf(name)) {
      const holds = this.#byBare.get(name)
      if (holds) yield * holds
    }
    const below = this.#below.get(bare)
    if (below) yield * below
  }

  #index (hold: Hold): void {
    addTo(this.#byOwner, hold.ownerId, hold)
    this.#count[classOf(hold)]++
    if (hold.expiresAt !== null) this.#addOffline(hold)
    if (hold.host.startsWith('tcp:')) return
    const bare = bareName(hold.host)
    addTo(this.#byBare, bare, hold)
    for (let name = parentOf(bare); name !== undefined && name !== this.#domain; name = parentOf(name)) addTo(this.#below, name, hold)
  }

  #unindex (hold: Hold): void {
    removeFrom(this.#byOwner, hold.ownerId, hold)
    this.#count[classOf(hold)]--
    this.#offline[classOf(hold)].delete(hold.host)
    if (hold.host.startsWith('tcp:')) return
    const bare = bareName(hold.host)
    removeFrom(this.#byBare, bare, hold)
    for (let name = parentOf(bare); name !== undefined && name !== this.#domain; name = parentOf(name)) removeFrom(this.#below, name, hold)
  }

  #addOffline (hold: Hold): void {
    const name = classOf(hold)
    const offline = this.#offline[name]
    if (hold.expiresAt! < this.#latest[name]) this.#unordered[name] = true
    else this.#latest[name] = hold.expiresAt!
    offline.set(hold.host, hold)
  }

  #sortIfNeeded (name: 'known' | 'anonymous'): void {
    if (!this.#unordered[name]) return
    const offline = this.#offline[name]
    const sorted = [...offline.values()].sort((a, b) => a.expiresAt! - b.expiresAt!) // stable: ties keep their order
    offline.clear()
    for (const hold of sorted) offline.set(hold.host, hold)
    this.#unordered[name] = false
    this.#latest[name] = sorted.at(-1)?.expiresAt ?? -Infinity
  }
}

const EMPTY: ReadonlySet<Hold> = new Set()

function classOf (hold: Hold): 'known' | 'anonymous' {
  return hold.anonymous === true ? 'anonymous' : 'known'
}

/** `a.b.c` -> `b.c` -> `c` -> undefined. */
function parentOf (name: string): string | undefined {
  const dot = name.indexOf('.')
  return dot === -1 ? undefined : name.slice(dot + 1)
}

function addTo (map: Map<string, Set<Hold>>, key: string, hold: Hold): void {
  let set = map.get(key)
  if (!set) map.set(key, set = new Set())
  set.add(hold)
}

function removeFrom (map: Map<string, Set<Hold>>, key: string, hold: Hold): void {
  const set = map.get(key)
  if (!set) return
  set.delete(hold)
  if (set.size === 0) map.delete(key)
}
