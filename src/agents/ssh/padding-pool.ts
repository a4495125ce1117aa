// ssh2 fills every outgoing packet's random padding (RFC 4253 6: 4 to 255 "arbitrary-length padding ... random
// bytes") with its own crypto.randomFillSync call: one trip into OpenSSL per packet, 17-19% of the gateway's CPU
// in `npm run bench` (issue 13). ssh2 has no hook for it (the cipher classes are private to
// lib/protocol/crypto.js), so this module replaces their allocPacket once, at start-up, with the same code
// taking its padding from a pool of random bytes that randomFillSync refills in bulk. The bytes stay what they
// were: from the CSPRNG, each used once, so the padding is exactly as random as before; only the number of calls
// changes (one per POOL_BYTES / ~12 bytes of padding instead of one per packet).
//
// The patch is applied to a class only if its allocPacket is, to the byte, the source this replacement was
// written from (ssh2 1.17.0); any other version keeps ssh2's own code, and test/unit/padding-pool.test.ts fails
// so that whoever upgrades ssh2 looks again. The NullCipher (the handshake's few unencrypted packets) is left
// alone. Preferred over patch-package: no postinstall step, and a changed ssh2 degrades to its own behaviour.
import { createHash, randomFillSync } from 'node:crypto'
import { createRequire } from 'node:module'

/** Random bytes drawn per refill: about 4,000 packets' padding for one call into OpenSSL. */
export const POOL_BYTES = 64 * 1024

/** Random bytes handed out in order, each once; refilled from the CSPRNG when used up. */
export class RandomPool {
  readonly #bytes: Buffer
  #used: number
  refills = 0

  constructor (size = POOL_BYTES) {
    this.#bytes = Buffer.allocUnsafe(size)
    this.#used = size // filled on first use
  }

  /** Writes `length` (<= the pool's size) fresh random bytes into `target` at `offset`. */
  fill (target: Uint8Array, offset: number, length: number): void {
    const bytes = this.#bytes
    if (this.#used + length > bytes.length) {
      randomFillSync(bytes)
      this.#used = 0
      this.refills++
    }
    // A loop beats Buffer#copy for the 4..35 bytes a padding is (no subarray, no native call).
    let from = this.#used
    const end = offset + length
    for (let i = offset; i < end; i++) target[i] = bytes[from++]!
    this.#used = from
  }
}

/** The one pool every patched cipher draws from (ssh2 runs on the main thread only). */
export const paddingPool = new RandomPool()

interface CipherLike {
  allocPacket (payloadLen: number): Buffer
  free (): void
  _encBlockLen?: number
  _aadLen?: number
  _macLen?: number
}
type AllocPacket = (this: CipherLike, payloadLen: number) => Buffer

/**
 * How each of ssh2's cipher classes sizes a packet (lib/protocol/crypto.js): the cipher block the padded
 * packet is a multiple of, how many leading bytes that count leaves out (the length field for AEAD and ETM
 * modes), and the room left after the packet for the MAC or tag a native binding writes in place.
 */
interface Shape {
  readonly name: string
  readonly sha256: string
  readonly block: (cipher: CipherLike) => number
  readonly unpadded: (cipher: CipherLike) => number
  readonly trailer: (cipher: CipherLike) => number
}

const fixed = (n: number) => (): number => n
const SHAPES: readonly Shape[] = [
  { name: 'ChaChaPolyCipherBinding', sha256: '8478ca5a1043e681360cc0be4aa6884e0d716845d366642427a0edbec322731d', block: fixed(8), unpadded: fixed(4), trailer: fixed(16) },
  { name: 'ChaChaPolyCipherNative', sha256: 'fe39d609b787d224827078cd8dbebd1bed30ab2829800be8d8e6fbf72f1444de', block: fixed(8), unpadded: fixed(4), trailer: fixed(0) },
  { name: 'AESGCMCipherBinding', sha256: 'db5a8779179b7dddf434945ae86be16f60a125d897a505b9272e1696479804d1', block: fixed(16), unpadded: fixed(4), trailer: fixed(16) },
  { name: 'AESGCMCipherNative', sha256: '9952dbcdfc98af2319470fc94e7427f6b16c3b7ef692b38c3b1e39ebd984a4d4', block: fixed(16), unpadded: fixed(4), trailer: fixed(0) },
  { name: 'GenericCipherBinding', sha256: '07b496549ac1a6192673bc512a6be914e5842ee058db54f3507a1265216d19f4', block: (c) => c._encBlockLen!, unpadded: (c) => c._aadLen!, trailer: (c) => c._macLen! },
  { name: 'GenericCipherNative', sha256: 'd46dd17e627a3da209a4072ab20cdd02266dad32bcdcff326ff9d6029ab99907', block: (c) => c._encBlockLen!, unpadded: (c) => c._aadLen!, trailer: fixed(0) },
]

/** ssh2's allocPacket with the padding taken from the pool. */
function pooledAllocPacket (shape: Shape): AllocPacket {
  const { block, unpadded, trailer } = shape
  return function allocPacket (this: CipherLike, payloadLen: number): Buffer {
    const blockLen = block(this)
    let pktLen = 4 + 1 + payloadLen
    let padLen = blockLen - ((pktLen - unpadded(this)) & (blockLen - 1))
    if (padLen < 4) padLen += blockLen
    pktLen += padLen
    const packet = Buffer.allocUnsafe(pktLen + trailer(this))
    packet.writeUInt32BE(pktLen - 4, 0)
    packet[4] = padLen
    paddingPool.fill(packet, 5 + payloadLen, padLen)
    return packet
  }
}

export interface PatchedClass {
  readonly name: string
  readonly prototype: CipherLike
  /** ssh2's own allocPacket, kept for the test that compares both. */
  readonly original: AllocPacket
  readonly patched: boolean
}

let installed: readonly PatchedClass[] | null = null

/** Patches ssh2's cipher classes (once; later calls return the first result). */
export function installPaddingPool (): readonly PatchedClass[] {
  installed ??= SHAPES.map((shape) => {
    const prototype = cipherPrototype(shape.name)
    const original = prototype?.allocPacket as AllocPacket | undefined
    if (prototype === null || original === undefined) return { name: shape.name, prototype: {} as CipherLike, original: () => Buffer.alloc(0), patched: false }
    const source = createHash('sha256').update(String(original)).digest('hex')
    const patched = source === shape.sha256
    if (patched) prototype.allocPacket = pooledAllocPacket(shape)
    return { name: shape.name, prototype, original, patched }
  })
  return installed
}

/** One throwaway instance of an ssh2 cipher class (they are not exported), for its prototype. */
function cipherPrototype (name: string): CipherLike | null {
  const require = createRequire(import.meta.url)
  const crypto = require('ssh2/lib/protocol/crypto.js') as {
    CIPHER_INFO: Record<string, { keyLen: number, ivLen: number }>
    MAC_INFO: Record<string, { len: number }>
    createCipher (config: unknown): CipherLike
  }
  const cipher = name.startsWith('ChaCha')
    ? crypto.CIPHER_INFO['chacha20-poly1305@openssh.com']
    : name.startsWith('AESGCM') ? crypto.CIPHER_INFO['aes128-gcm@openssh.com'] : crypto.CIPHER_INFO['aes128-ctr']
  const mac = crypto.MAC_INFO['hmac-sha2-256']
  if (cipher === undefined || mac === undefined) return null
  try {
    const instance = crypto.createCipher({
      outbound: {
        onWrite: () => {},
        cipherInfo: cipher,
        cipherKey: Buffer.alloc(cipher.keyLen),
        cipherIV: Buffer.alloc(cipher.ivLen),
        macInfo: mac,
        macKey: Buffer.alloc(mac.len),
        seqno: 0,
        forceNative: name.endsWith('Native'),
      },
    })
    instance.free()
    const prototype = Object.getPrototypeOf(instance) as CipherLike & { constructor: { name: string } }
    return prototype.constructor.name === name ? prototype : null
  } catch {
    return null
  }
}
