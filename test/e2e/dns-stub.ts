// TEST ONLY. A minimal UDP DNS responder that answers every A question with 127.0.0.1 (and every other type
// with an empty NOERROR answer). Pebble validates HTTP-01 by resolving the order's name, and Go's resolver
// does not map `*.localhost` to loopback as browsers and curl do; `pebble -dnsserver 127.0.0.1:<port>`
// points it here instead. Handles the one-question queries a stub resolver sends, nothing more.
import { createSocket, type Socket } from 'node:dgram'

const TYPE_A = 1
const CLASS_IN = 1

export interface DnsStub {
  readonly port: number
  /** Names asked so far (lower case, no trailing dot). */
  readonly asked: string[]
  close (): Promise<void>
}

export async function startDnsStub (): Promise<DnsStub> {
  const socket: Socket = createSocket('udp4')
  const asked: string[] = []
  socket.on('message', (query, peer) => {
    const answer = respond(query, asked)
    if (answer) socket.send(answer, peer.port, peer.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  return {
    port: socket.address().port,
    asked,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  }
}

function respond (query: Buffer, asked: string[]): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null // want exactly one question
  // Walk the question's name (uncompressed labels), then QTYPE and QCLASS.
  let offset = 12
  const labels: string[] = []
  while (offset < query.length && query[offset] !== 0) {
    const length = query[offset]!
    labels.push(query.subarray(offset + 1, offset + 1 + length).toString('ascii'))
    offset += 1 + length
  }
  const questionEnd = offset + 5
  if (questionEnd > query.length) return null
  const type = query.readUInt16BE(offset + 1)
  asked.push(labels.join('.').toLowerCase())

  const isA = type === TYPE_A
  const header = Buffer.alloc(12)
  header.writeUInt16BE(query.readUInt16BE(0), 0) // id
  header.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x0100) | 0x0400, 2) // QR, RD copied, AA; RCODE 0
  header.writeUInt16BE(1, 4) // QDCOUNT
  header.writeUInt16BE(isA ? 1 : 0, 6) // ANCOUNT
  const question = query.subarray(12, questionEnd)
  if (!isA) return Buffer.concat([header, question])
  const answer = Buffer.alloc(16)
  answer.writeUInt16BE(0xc00c, 0) // pointer to the question's name
  answer.writeUInt16BE(TYPE_A, 2)
  answer.writeUInt16BE(CLASS_IN, 4)
  answer.writeUInt32BE(5, 6) // TTL
  answer.writeUInt16BE(4, 10)
  answer.set([127, 0, 0, 1], 12)
  return Buffer.concat([header, question, answer])
}
