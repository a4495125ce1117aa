// What an idle SSH session keeps of its key exchange. ssh2 leaves the whole exchange object on the protocol
// (`protocol._kex`) for the life of the connection: the ephemeral x25519 key pair (two KeyObjects and their
// OpenSSL keys), the negotiated algorithm names (sliced from the client's KEXINIT lists, so each keeps its whole
// list string, ~350 bytes, alive), and the closure that finished the handshake, whose scope holds the shared
// secret and the exchange hash. After the handshake ssh2 reads only three things of it: the session id (userauth
// signatures, and the next exchange of a rekey, which starts from it), the negotiated compression (at the login
// success) and whether the client takes ext-info (during the first handshake's completion, before 'handshake').
// So after each 'handshake' the object is replaced by one holding those. Not keeping the shared secret and the
// ephemeral private key around is also what a key exchange should do.
//
// The identification lines the exchange hashes again on a rekey stay, and so do the new cipher and decipher's
// keys and scratch buffers, but in memory of their own: ssh2 cuts them from Node's shared 8 KiB buffer pool, and one
// such small slice kept for the connection's life keeps its whole pool slab (other connections' long-gone packets)
// from being freed: about 2.4 KB per idle session in a heap snapshot. The ident line ssh2 writes first is built
// in its Protocol's constructor and kept in that constructor's closures: `withOwnBuffers` runs the constructor
// with Buffer.allocUnsafe not pooled (a synchronous call: nothing else runs meanwhile).

interface ExchangeLike {
  sessionID?: Uint8Array
  negotiated?: { cs?: { compress?: unknown }, sc?: { compress?: unknown } }
  remoteExtInfoEnabled?: unknown
  _finished?: unknown
}

interface ProtocolLike {
  _kex?: ExchangeLike
  _cipher?: object
  _decipher?: object
  _identRaw?: Buffer
  _remoteIdentRaw?: Buffer
}

/** What ssh2 reads of an exchange once it is done. */
export interface TrimmedExchange {
  readonly sessionID: Uint8Array
  readonly negotiated: { readonly cs: { readonly compress: unknown }, readonly sc: { readonly compress: unknown } }
  readonly remoteExtInfoEnabled: unknown
}

/** Our own ident line is the same for every connection: one copy. */
const identCopies = new Map<string, Buffer>()

/** `buf` in memory of its own (not a slice of a pool slab or of a bigger read); unchanged if it already is. */
export function ownMemory (buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.length) return buf
  const copy = Buffer.allocUnsafeSlow(buf.length)
  buf.copy(copy)
  return copy
}

/**
 * Replaces a finished exchange on ssh2's protocol object by what ssh2 reads of it later (see above), and moves the
 * ident lines out of pooled memory. Leaves anything it does not recognise alone.
 */
export function trimExchange (protocol: ProtocolLike | undefined): void {
  const kex = protocol?._kex
  if (!protocol || !kex || kex._finished !== true || !(kex.sessionID instanceof Uint8Array) || !kex.negotiated?.cs || !kex.negotiated.sc) return
  const trimmed: TrimmedExchange = {
    sessionID: kex.sessionID,
    negotiated: { cs: { compress: kex.negotiated.cs.compress }, sc: { compress: kex.negotiated.sc.compress } },
    remoteExtInfoEnabled: kex.remoteExtInfoEnabled,
  }
  protocol._kex = trimmed as ExchangeLike
  if (Buffer.isBuffer(protocol._identRaw)) {
    const key = protocol._identRaw.toString('latin1')
    let shared = identCopies.get(key)
    if (shared === undefined && identCopies.size < 4) identCopies.set(key, shared = ownMemory(protocol._identRaw))
    protocol._identRaw = shared ?? ownMemory(protocol._identRaw)
  }
  if (Buffer.isBuffer(protocol._remoteIdentRaw)) protocol._remoteIdentRaw = ownMemory(protocol._remoteIdentRaw)
}

/** Buffers longer than this in a cipher are not its keys or scratch space: left alone. */
const SMALL = 256

/** A cipher or decipher's small buffers (keys, IVs, MAC and tag scratch) moved to memory of their own. */
function ownCipherBuffers (cipher: object | undefined): void {
  if (!cipher || !/Cipher|Decipher/.test(cipher.constructor.name)) return
  const fields = cipher as Record<string, unknown>
  for (const key of Object.keys(fields)) {
    const value = fields[key]
    if (Buffer.isBuffer(value) && value.length <= SMALL) fields[key] = ownMemory(value)
  }
}

/** After a handshake: the ciphers it made keep no pool slab. */
export function trimCiphers (protocol: ProtocolLike | undefined): void {
  ownCipherBuffers(protocol?._cipher)
  ownCipherBuffers(protocol?._decipher)
}

/** Runs `construct` (ssh2's synchronous connection setup) with Buffer.allocUnsafe handing out unpooled memory. */
export function withOwnBuffers<T> (construct: () => T): T {
  const pooled = Buffer.allocUnsafe
  Buffer.allocUnsafe = Buffer.allocUnsafeSlow
  try {
    return construct()
  } finally {
    Buffer.allocUnsafe = pooled
  }
}
