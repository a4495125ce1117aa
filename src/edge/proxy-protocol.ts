// PROXY protocol headers (HAProxy's spec, v1 text and v2 binary) that tell the service behind a tcp/tls
// endpoint who the public client is, since its own peer is the SSH client on the agent's machine.
import { isIPv4 } from 'node:net'
import type { Socket } from 'node:net'

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

function unmapped (address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

function ipv6Bytes (address: string): Buffer {
  if (isIPv4(address)) return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address.split('.').map(Number)])
  // Expand '::' and write the eight 16-bit groups.
  const [head = '', tail = ''] = address.split('::')
  const headGroups = head === '' ? [] : head.split(':')
  const tailGroups = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::')
    ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
    : headGroups
  const bytes = Buffer.alloc(16)
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16) || 0, i * 2))
  return bytes
}

/** The header for a public connection: source = the client, destination = the gateway's public address. */
export function proxyHeader (version: 1 | 2, socket: Socket): Buffer {
  const source = unmapped(socket.remoteAddress ?? '0.0.0.0')
  const destination = unmapped(socket.localAddress ?? '0.0.0.0')
  const sourcePort = socket.remotePort ?? 0
  const destinationPort = socket.localPort ?? 0
  const v4 = isIPv4(source) && isIPv4(destination)
  if (version === 1) {
    return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`, 'latin1')
  }
  const addresses = v4
    ? Buffer.concat([Buffer.from(source.split('.').map(Number)), Buffer.from(destination.split('.').map(Number))])
    : Buffer.concat([ipv6Bytes(source), ipv6Bytes(destination)])
  const ports = Buffer.alloc(4)
  ports.writeUInt16BE(sourcePort, 0)
  ports.writeUInt16BE(destinationPort, 2)
  const head = Buffer.alloc(4)
  head[0] = 0x21 // version 2, PROXY command
  head[1] = v4 ? 0x11 : 0x21 // TCP over IPv4 / IPv6
  head.writeUInt16BE(addresses.length + ports.length, 2)
  return Buffer.concat([V2_SIGNATURE, head, addresses, ports])
}
