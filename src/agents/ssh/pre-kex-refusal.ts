// What a connection refused before its key exchange (MaxStartups, per-source caps) is sent, so that the user reads
// why. A line before the SSH version (RFC 4253 4.2 allows them) is shown by `ssh -v` only; so it is followed by our
// version line and an SSH_MSG_DISCONNECT in the clear (a packet may be sent before any key exchange, unencrypted
// and without MAC; RFC 4253 11.1: a disconnect may be sent at any time), which OpenSSH prints at its default
// LogLevel ("Received disconnect from ...: PH_1050: ..."). No key exchange is done: refusing stays cheap under a
// flood. Dropbear prints neither (it says "Remote closed the connection").
const SSH_MSG_DISCONNECT = 1
/** RFC 4253 11.1: SSH_DISCONNECT_TOO_MANY_CONNECTIONS. */
const TOO_MANY_CONNECTIONS = 12
const BLOCK = 8

/** The bytes to write: the line, our version line, and a cleartext disconnect packet carrying the line. */
export function preKexRefusal (line: string, ident = 'SSH-2.0-Porthole'): Buffer {
  const text = Buffer.from(line.slice(0, 400), 'utf8')
  const payload = Buffer.alloc(1 + 4 + 4 + text.length + 4)
  payload[0] = SSH_MSG_DISCONNECT
  payload.writeUInt32BE(TOO_MANY_CONNECTIONS, 1)
  payload.writeUInt32BE(text.length, 5)
  text.copy(payload, 9)
  payload.writeUInt32BE(0, 9 + text.length) // empty language tag
  // packet_length (4) + padding_length (1) + payload + padding: a multiple of 8, with at least 4 bytes of padding.
  let padding = BLOCK - ((5 + payload.length) % BLOCK)
  if (padding < 4) padding += BLOCK
  const packet = Buffer.alloc(5 + payload.length + padding)
  packet.writeUInt32BE(1 + payload.length + padding, 0)
  packet[4] = padding
  payload.copy(packet, 5)
  return Buffer.concat([Buffer.from(`${line}\r\n${ident}\r\n`, 'latin1'), packet])
}
