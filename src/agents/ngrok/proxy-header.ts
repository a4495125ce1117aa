// The header that starts every Proxy stream the gateway opens to an ngrok agent (after the u32 stream type 3,
// which the muxado layer writes): an int64 little-endian length, then JSON. ngrok-rust reads it into a strict
// serde struct (proto.rs ProxyHeader): all five keys, this exact casing, EdgeType a string, and ClientAddr must
// parse as a Rust SocketAddr ("1.2.3.4:5678", "[::1]:5678") or the agent reports 0.0.0.0:0 to the application.
import { isIP } from 'node:net'
import { PortholeError } from '../../core/errors.js'

/** ngrok's edge types as the header carries them; endpoints (not labeled edges) carry '' or '0'. */
export type EdgeType = '' | '0' | '1' | '2' | '3'
export const EDGE_TYPE = { undefined: '0', tcp: '1', tls: '2', https: '3' } as const satisfies Record<string, EdgeType>

export interface ProxyHeader {
  /** The tunnel Id from the BindResp the connection belongs to. */
  readonly id: string
  /** The public client, as clientAddr() formats it. */
  readonly clientAddr: string
  /** The bound proto ('http', 'https', 'tcp', 'tls'): ngrok-rust serves its gateway-error page for http(s). */
  readonly proto: string
  readonly edgeType?: EdgeType
  /** tls endpoints: the stream carries the client's TLS bytes (ngrok-rust then forwards them without TLS of its own). */
  readonly passthroughTls?: boolean
}

/** The largest header decodeProxyHeader accepts (the gateway writes a few hundred bytes). */
const MAX_HEADER_BYTES = 64 * 1024

/** `host:port` as Rust's SocketAddr parses it: IPv6 in brackets, IPv4-mapped IPv6 shown as IPv4. */
export function clientAddr (address: string, port: number): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return `${mapped[1]!}:${port}`
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`
}

/** The bytes that follow the stream type: int64 LE length + {"Id","ClientAddr","Proto","EdgeType","PassthroughTLS"}. */
export function proxyHeader (header: ProxyHeader): Buffer {
  const json = Buffer.from(JSON.stringify({
    Id: header.id,
    ClientAddr: header.clientAddr,
    Proto: header.proto,
    EdgeType: header.edgeType ?? '',
    PassthroughTLS: header.passthroughTls ?? false,
  }))
  const out = Buffer.allocUnsafe(8 + json.length)
  out.writeBigInt64LE(BigInt(json.length), 0)
  json.copy(out, 8)
  return out
}

/**
 * The agent's side, for tests and in-process agents: the header at the start of `bytes` and how many bytes it
 * took, or undefined while incomplete. Throws PH_1070 for a negative or oversized length or bad JSON.
 */
export function decodeProxyHeader (bytes: Buffer): { header: Required<ProxyHeader>, length: number } | undefined {
  if (bytes.length < 8) return undefined
  const size = bytes.readBigInt64LE(0)
  if (size < 0n || size > BigInt(MAX_HEADER_BYTES)) throw new PortholeError('PH_1070', `proxy header length ${size}`)
  const end = 8 + Number(size)
  if (bytes.length < end) return undefined
  let value: unknown
  try {
    value = JSON.parse(bytes.subarray(8, end).toString('utf8'))
  } catch (error) {
    throw new PortholeError('PH_1070', `proxy header: ${(error as Error).message}`)
  }
  const v = value as Record<string, unknown>
  if (typeof v.Id !== 'string' || typeof v.ClientAddr !== 'string' || typeof v.Proto !== 'string' || typeof v.EdgeType !== 'string' || typeof v.PassthroughTLS !== 'boolean') {
    throw new PortholeError('PH_1070', 'proxy header: want Id, ClientAddr, Proto, EdgeType (strings) and PassthroughTLS (a boolean)')
  }
  return { header: { id: v.Id, clientAddr: v.ClientAddr, proto: v.Proto, edgeType: v.EdgeType as EdgeType, passthroughTls: v.PassthroughTLS }, length: end }
}
