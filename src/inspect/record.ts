// What the inspector keeps of one HTTP request through an endpoint: the request and response as they went over
// the wire (heads and the start of their bodies, up to the capture cap), who sent it and when, in a shape that
// maps one to one onto ngrok's agent API (`GET /api/requests/http`). The edge fills it in (capture.ts); the store
// keeps it per owner (store.ts); the inspector serves it (server.ts).

export interface CapturedMessage {
  /** Header names as sent (case kept), each with its values in order. */
  readonly headers: Readonly<Record<string, readonly string[]>>
  /** The first bytes of the body, at most the capture cap. */
  readonly body: Buffer
  /** How many body bytes went by in all (more than body.length when truncated). */
  readonly bodySize: number
  readonly truncated: boolean
}

export interface CapturedRequestPart extends CapturedMessage {
  readonly method: string
  /** 'HTTP/1.1' or 'HTTP/2.0', as the public client spoke it. */
  readonly proto: string
  /** The path and query the upstream received (origin-form). */
  readonly uri: string
}

export interface CapturedResponsePart extends CapturedMessage {
  /** '200 OK' */
  readonly status: string
  readonly statusCode: number
  readonly proto: string
}

export interface CapturedRequest {
  /** 'req_' + a sortable unique id (later ids sort after earlier ones). */
  readonly id: string
  /** Who may see it: the endpoint owner's id (an account's owner id covers all its keys and agents). */
  readonly ownerId: string
  readonly endpointId: string
  /** The endpoint's host (ngrok's tunnel_name): `abc.localhost`, `*.team.localhost`. */
  readonly tunnelName: string
  /** The public client, `ip:port`. */
  readonly remoteAddr: string
  /** ISO 8601 time the request arrived. */
  readonly start: string
  readonly durationMs: number
  readonly request: CapturedRequestPart
  /** null when no response came (the upstream failed: see errorCode). */
  readonly response: CapturedResponsePart | null
  /** The catalogue code the edge answered with, when it answered itself (PH_3002, a policy denial...). */
  readonly errorCode?: string
  /** The id of the captured request this one replays. */
  readonly replayOf?: string
  /**
   * The request as the public client sent it, before the traffic policy changed it (hop-by-hop headers dropped,
   * X-Forwarded-* as the edge set them): what a replay sends, so that it meets the same policy again (basic-auth
   * removes Authorization before the upstream; a url-rewrite changes the path). Absent for upgrades.
   */
  readonly public?: { readonly uri: string, readonly headers: Readonly<Record<string, readonly string[]>> }
}

/** The per-owner store the edge feeds and the inspector reads (bounded by count and bytes per owner). */
export interface InspectStore {
  add (record: CapturedRequest): void
  /** Newest first; `tunnelName` filters. */
  list (ownerId: string, options?: { limit?: number, tunnelName?: string }): CapturedRequest[]
  get (ownerId: string, id: string): CapturedRequest | undefined
  clear (ownerId: string): void
  /** Called with each record added for that owner (the inspector's live stream); returns the unsubscribe. */
  subscribe (ownerId: string, listener: (record: CapturedRequest) => void): () => void
}

/** Sends a captured request (possibly edited) through the same endpoint, policy and tunnel as live traffic. */
export type Replay = (record: CapturedRequest, edits?: { method?: string, uri?: string, headers?: Record<string, string[]>, body?: Buffer }) => Promise<void>
