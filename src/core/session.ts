// What the gateway reports about a live agent session and its endpoints (the admin API's sessions and
// endpoints resources). Any agent transport can fill these in.

export interface EndpointInfo {
  readonly id: string
  /** Public URLs, https first. */
  readonly urls: readonly string[]
  readonly proto: 'http' | 'tcp' | 'tls'
  /** Exact host, `*.suffix`, or `tcp:PORT`. */
  readonly host: string
  readonly sessionId: string
  /** null: a key from --authorized-keys (the implicit default account) or an anonymous client. */
  readonly account: string | null
}

export type CredentialKind = 'key' | 'token' | 'authorized-key' | 'anonymous'

export interface SessionInfo {
  readonly id: string
  /** The agent transport: a stock SSH client, or an ngrok agent (SDK or CLI). */
  readonly clientType: 'ssh' | 'ngrok'
  readonly account: string | null
  readonly credential: { readonly kind: CredentialKind, readonly id: string | null }
  /** SHA256:... when the client logged in with a key. */
  readonly fingerprint: string | null
  readonly clientVersion: string
  readonly remoteAddr: string
  readonly remotePort: number
  readonly startedAt: string
  /** Bytes on the SSH connection, from and to the client. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Streams open to the agent right now (SSH: forwarded-tcpip channels); idle keep-alive ones included. */
  readonly openStreams: number
  readonly endpoints: readonly EndpointInfo[]
}

/** The live sessions of an agent transport, for the admin API. */
export interface SessionDirectory {
  sessions (): SessionInfo[]
  /** Ends a session and unbinds its endpoints; false when no such session. */
  kill (id: string): Promise<boolean>
}
