// Telling an SSH user why their login is refused. ssh2's server sends its one USERAUTH_BANNER before the first
// authentication request (its `banner` option); a refusal decided during authentication (a session budget full,
// too many attempts) needs one later. RFC 4252 5.4 allows a banner at any time before authentication succeeds,
// and the clients print it where they print nothing else: OpenSSH in BatchMode (the usual mode of unattended
// tunnels) never tries keyboard-interactive, whose instruction would otherwise carry the reason, yet shows a banner
// at its default LogLevel; dbclient prints it too. ssh2 has no public call for it, so this writes the packet with
// the same internals its own banner uses (Protocol._packetRW, utils.sendPacket); should a later ssh2 rename them,
// sendAuthBanner returns false and the caller falls back to the keyboard-interactive instruction.
import { createRequire } from 'node:module'
import type { Connection } from 'ssh2'

const require = createRequire(import.meta.url)
const USERAUTH_BANNER = 53

interface PacketWriter { allocStart: number, alloc (size: number): Buffer, finalize (packet: Buffer): Buffer }
interface ProtocolInternals { _packetRW?: { write?: PacketWriter } }

let sendPacket: ((proto: unknown, packet: Buffer) => void) | null | undefined

function packetSender (): ((proto: unknown, packet: Buffer) => void) | null {
  if (sendPacket === undefined) {
    try {
      const utils = require('ssh2/lib/protocol/utils.js') as { sendPacket?: unknown }
      sendPacket = typeof utils.sendPacket === 'function' ? utils.sendPacket as (proto: unknown, packet: Buffer) => void : null
    } catch {
      sendPacket = null
    }
  }
  return sendPacket
}

/** Sends `line` as a userauth banner (ending in CRLF); false when ssh2's internals are not what this expects. */
export function sendAuthBanner (client: Connection, line: string): boolean {
  const proto = (client as unknown as { _protocol?: ProtocolInternals })._protocol
  const writer = proto?._packetRW?.write
  const send = packetSender()
  if (!writer || typeof writer.alloc !== 'function' || typeof writer.finalize !== 'function' || send === null) return false
  const text = line.endsWith('\r\n') ? line : `${line}\r\n`
  const length = Buffer.byteLength(text)
  try {
    let p = writer.allocStart
    const packet = writer.alloc(1 + 4 + length + 4)
    packet[p] = USERAUTH_BANNER
    packet.writeUInt32BE(length, ++p)
    packet.write(text, p += 4, length, 'utf8')
    packet.writeUInt32BE(0, p + length) // empty language tag
    send(proto, writer.finalize(packet))
    return true
  } catch {
    return false
  }
}
