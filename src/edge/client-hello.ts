// Reads the server name (SNI) from a TLS ClientHello without terminating TLS, so the HTTPS listener can
// decide between passing the connection through untouched (tls endpoints) and terminating it itself.
// Only the first TLS record is read; every length is checked against what is actually there.

export type HelloResult =
  | { state: 'incomplete' } // need more bytes
  | { state: 'invalid', reason: string }
  | { state: 'done', serverName: string | null }

const HANDSHAKE = 22
const CLIENT_HELLO = 1
const SERVER_NAME_EXTENSION = 0
const HOST_NAME = 0
/** A ClientHello larger than one full record is refused (real ones are a few hundred bytes, < 2 KiB). */
export const MAX_HELLO_BYTES = 5 + 16_384

export function parseClientHello (data: Buffer): HelloResult {
  if (data.length < 5) return { state: 'incomplete' }
  if (data[0] !== HANDSHAKE) return { state: 'invalid', reason: 'not a TLS handshake record' }
  if (data[1] !== 3) return { state: 'invalid', reason: 'not TLS' }
  const recordLength = data.readUInt16BE(3)
  if (recordLength > 16_384) return { state: 'invalid', reason: 'record too long' }
  if (data.length < 5 + recordLength) return { state: 'incomplete' }
  const body = data.subarray(5, 5 + recordLength)
  if (body.length < 4 || body[0] !== CLIENT_HELLO) return { state: 'invalid', reason: 'not a ClientHello' }
  const helloLength = body.readUIntBE(1, 3)
  // A ClientHello split over several records is legal but never seen from real clients; refuse it.
  if (helloLength + 4 > body.length) return { state: 'invalid', reason: 'ClientHello spans records' }

  let p = 4 + 2 + 32 // handshake header, client version, random
  const need = (n: number): boolean => p + n <= 4 + helloLength
  if (!need(1)) return { state: 'invalid', reason: 'truncated' }
  p += 1 + body[p]! // session id
  if (!need(2)) return { state: 'invalid', reason: 'truncated' }
  p += 2 + body.readUInt16BE(p) // cipher suites
  if (!need(1)) return { state: 'invalid', reason: 'truncated' }
  p += 1 + body[p]! // compression methods
  if (p === 4 + helloLength) return { state: 'done', serverName: null } // no extensions
  if (!need(2)) return { state: 'invalid', reason: 'truncated' }
  const extensionsEnd = p + 2 + body.readUInt16BE(p)
  p += 2
  if (extensionsEnd > 4 + helloLength) return { state: 'invalid', reason: 'truncated extensions' }
  while (p + 4 <= extensionsEnd) {
    const type = body.readUInt16BE(p)
    const length = body.readUInt16BE(p + 2)
    p += 4
    if (p + length > extensionsEnd) return { state: 'invalid', reason: 'truncated extension' }
    if (type === SERVER_NAME_EXTENSION) return readServerName(body.subarray(p, p + length))
    p += length
  }
  return { state: 'done', serverName: null }
}

function readServerName (ext: Buffer): HelloResult {
  if (ext.length < 2) return { state: 'invalid', reason: 'bad server_name' }
  const listEnd = 2 + ext.readUInt16BE(0)
  if (listEnd > ext.length) return { state: 'invalid', reason: 'bad server_name' }
  let p = 2
  while (p + 3 <= listEnd) {
    const type = ext[p]!
    const length = ext.readUInt16BE(p + 1)
    p += 3
    if (p + length > listEnd) return { state: 'invalid', reason: 'bad server_name' }
    if (type === HOST_NAME) {
      const name = ext.subarray(p, p + length).toString('ascii').toLowerCase().replace(/\.$/, '')
      if (!/^[a-z0-9*.-]{1,253}$/.test(name)) return { state: 'invalid', reason: 'bad host name' }
      return { state: 'done', serverName: name }
    }
    p += length
  }
  return { state: 'done', serverName: null }
}
