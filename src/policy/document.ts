// A traffic policy document, shaped like ngrok's Traffic Policy: phases hold rules; a rule's actions run in
// order when all its expressions hold. Flags from the SSH command line compile to this same shape
// (policy/from-flags.ts), so there is one module core whatever the source.

export interface BasicAuthAction {
  type: 'basic-auth'
  config: { credentials: string[], realm?: string }
}
export interface RestrictIpsAction {
  type: 'restrict-ips'
  config: { allow?: string[], deny?: string[] }
}
export interface AddHeadersAction {
  type: 'add-headers'
  config: { headers: Record<string, string> }
}
export interface RemoveHeadersAction {
  type: 'remove-headers'
  config: { headers: string[] }
}

export type Action = BasicAuthAction | RestrictIpsAction | AddHeadersAction | RemoveHeadersAction

export interface Rule {
  name?: string
  /** CEL expressions; all must hold. Evaluated once the CEL engine lands (issue 5); until then must be empty. */
  expressions?: string[]
  actions: Action[]
}

export interface PolicyDocument {
  on_tcp_connect?: Rule[]
  on_http_request?: Rule[]
  on_http_response?: Rule[]
}

export type Phase = keyof PolicyDocument
