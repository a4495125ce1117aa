// The one catalogue of Porthole error codes. Every error a user or operator can see has an entry here:
// its HTTP status (for the edge and API), a message template and where it surfaces. docs/errors.md documents
// the same codes; test/unit/errors.test.ts keeps the two in step.

export type Surface = 'edge' | 'ssh' | 'ngrok' | 'config' | 'log' | 'api'

interface CatalogueEntry {
  readonly status: number
  readonly message: string
  readonly surfaces: readonly Surface[]
}

export const catalogue = {
  // SSH command line and binding (shown on the SSH terminal; the forward is refused, nothing is bound).
  PH_1001: { status: 400, message: 'unknown option {detail}', surfaces: ['ssh'] },
  PH_1002: { status: 400, message: 'bad value for {detail}', surfaces: ['ssh'] },
  PH_1003: { status: 400, message: 'unknown command {detail}; use http, tcp or tls', surfaces: ['ssh'] },
  PH_1004: { status: 400, message: 'bad CIDR {detail}', surfaces: ['ssh'] },
  PH_1005: { status: 400, message: 'malformed header {detail}', surfaces: ['ssh'] },
  PH_1006: { status: 400, message: 'malformed credential {detail}', surfaces: ['ssh'] },
  PH_1008: { status: 400, message: 'invalid traffic policy: {detail}', surfaces: ['ssh'] },
  PH_1010: { status: 400, message: 'invalid name {detail}', surfaces: ['ssh', 'ngrok'] },
  PH_1011: { status: 409, message: 'name {detail} is in use, held or reserved by someone else', surfaces: ['ssh', 'ngrok'] },
  PH_1012: { status: 403, message: 'wildcard {detail} would cover the whole base domain; bind *.<label>.<domain> instead', surfaces: ['ssh', 'ngrok'] },
  PH_1014: { status: 400, message: 'port {detail} cannot carry an http endpoint; use -R 80:..., -R 443:... or -R 0:...', surfaces: ['ssh'] },
  PH_1015: { status: 400, message: 'unix socket forwarding is not supported ({detail}); forward a TCP port', surfaces: ['ssh'] },
  PH_1017: { status: 409, message: 'forward {detail} is already requested in this session', surfaces: ['ssh', 'ngrok'] },
  PH_1018: { status: 429, message: 'too many forwards in one session (limit {detail}, the gateway\'s max-forwards-per-session)', surfaces: ['ssh', 'ngrok'] },
  PH_1019: { status: 400, message: 'no forwards: run ssh with -R, e.g. ssh -R 80:localhost:3000 {detail}', surfaces: ['ssh'] },
  PH_1020: { status: 401, message: 'key {detail} is not authorized on this gateway', surfaces: ['ssh'] },
  PH_1021: { status: 503, message: 'gateway is shutting down', surfaces: ['ssh', 'edge', 'ngrok'] },
  PH_1022: { status: 408, message: 'no command arrived in time for the forward {detail}', surfaces: ['ssh'] },
  PH_1030: { status: 409, message: 'port {detail} is in use, held or reserved by someone else', surfaces: ['ssh', 'ngrok'] },
  PH_1031: { status: 400, message: 'port {detail} is outside this gateway\'s TCP port pool', surfaces: ['ssh'] },
  PH_1032: { status: 503, message: 'no free port left in the TCP port pool ({detail})', surfaces: ['ssh'] },
  PH_1033: { status: 400, message: 'port {detail} cannot carry a tls endpoint; use -R name:443:localhost:PORT tls', surfaces: ['ssh'] },
  PH_1034: { status: 400, message: 'tcp endpoints take no name ({detail}); use -R 0:... or -R PORT:...', surfaces: ['ssh', 'ngrok'] },
  PH_1035: { status: 429, message: 'this key already has {detail} endpoints online (the gateway\'s max-holds-per-owner)', surfaces: ['ssh'] },
  PH_1036: { status: 503, message: 'the gateway holds too many names right now; try again later', surfaces: ['ssh'] },
  PH_1040: { status: 409, message: 'command {detail} came after the forwards were bound without options; they were taken down: send the command in the same ssh invocation as the -R', surfaces: ['ssh'] },
  PH_1041: { status: 400, message: 'unmatched quote {detail}: it would take the rest of the command line as one value; close it', surfaces: ['ssh'] },
  PH_1045: { status: 500, message: 'a traffic policy expression could not be evaluated: {detail}', surfaces: ['ssh'] },
  PH_1023: { status: 409, message: 'endpoint {detail} was taken over by a newer session of the same key', surfaces: ['ssh', 'ngrok'] },
  PH_1024: { status: 401, message: 'authtoken not accepted{detail}', surfaces: ['ssh', 'ngrok'] },
  PH_1025: { status: 403, message: 'not allowed to bind {detail}', surfaces: ['ssh', 'ngrok'] },
  PH_1026: { status: 410, message: 'session closed by the gateway operator', surfaces: ['ssh', 'ngrok'] },
  PH_1027: { status: 401, message: 'key {detail} is too weak to log in with; make a new one (ssh-keygen -t ed25519)', surfaces: ['ssh'] },
  PH_1060: { status: 409, message: 'name {detail} is under or above a name held by someone else (cookies of the one reach the other); choose a name apart from it', surfaces: ['ssh', 'ngrok'] },
  // ngrok agents: their session RPCs and Bind options (the reply's Error, shown by the SDK; nothing is bound).
  PH_1070: { status: 400, message: 'malformed ngrok message: {detail}', surfaces: ['ngrok', 'log'] },
  PH_1071: { status: 400, message: 'this gateway cannot honour ngrok option {detail}', surfaces: ['ngrok'] },
  PH_1072: { status: 400, message: 'bad value for ngrok option {detail}', surfaces: ['ngrok'] },
  PH_1073: { status: 413, message: 'ngrok message larger than {detail}', surfaces: ['ngrok', 'log'] },
  PH_1074: { status: 400, message: 'unknown ngrok option {detail}', surfaces: ['ngrok'] },
  PH_1081: { status: 400, message: 'the ngrok agent sent {detail} before a successful Auth', surfaces: ['ngrok', 'log'] },
  // The SSH terminal (agents/ssh/terminal*.ts, urls-command.ts).
  PH_1090: { status: 400, message: '`urls` lists your endpoints and binds none: run it without -R (ssh <gateway> urls)', surfaces: ['ssh'] },
  // Admission (who gets an SSH login when many try at once; see agents/ssh/admission.ts).
  PH_1050: { status: 429, message: 'too many connections not yet logged in from {detail}; try again when they have logged in or timed out', surfaces: ['ssh', 'log'] },
  PH_1051: { status: 503, message: 'the gateway is busy with {detail} connections not yet logged in; try again shortly', surfaces: ['ssh', 'log'] },
  PH_1052: { status: 408, message: 'no login within {detail} (login grace time)', surfaces: ['log'] },
  PH_1053: { status: 503, message: 'the gateway has {detail} sessions of known keys, its max-sessions; try again later', surfaces: ['ssh', 'ngrok'] },
  PH_1054: { status: 503, message: 'anonymous sessions are full ({detail}), the gateway\'s max-anonymous-sessions; log in with a key this gateway knows, or try again later', surfaces: ['ssh', 'ngrok'] },
  PH_1055: { status: 429, message: 'too many anonymous sessions from {detail}, the gateway\'s max-anonymous-sessions-per-source', surfaces: ['ssh', 'ngrok'] },
  PH_1056: { status: 429, message: 'this key already has {detail} sessions, its share (max-sessions-per-key); end one, or ask the operator for more', surfaces: ['ssh', 'ngrok'] },
  // Caps an SSH user can hit (PH_1120-PH_1129).
  PH_1120: { status: 429, message: 'more than {detail} authentication attempts on one connection; offer the right key first (ssh -i KEY -o IdentitiesOnly=yes)', surfaces: ['ssh', 'log'] },
  PH_1121: { status: 429, message: '{detail} wrong authtokens on one connection; connection closed', surfaces: ['ssh', 'log'] },
  PH_1122: { status: 503, message: 'this session carries {detail} streams at once, the gateway\'s max-streams-per-session: visitors get 502 until some finish (said at most once a minute)', surfaces: ['ssh', 'log'] },
  // Loops and `ssh gateway diagnose` (PH_1100-PH_1109).
  PH_1100: { status: 508, message: 'loop: this request came back through the gateway itself ({detail}); point the forward at your service, not at the gateway\'s own HTTP port', surfaces: ['edge'] },
  PH_1101: { status: 400, message: '`diagnose` shows what the gateway sees of you and binds nothing: run it without -R (ssh <gateway> diagnose)', surfaces: ['ssh'] },

  // Gateway configuration (refused at start, one line on stderr).
  PH_2001: { status: 500, message: 'invalid configuration: {detail}', surfaces: ['config'] },
  PH_2002: { status: 500, message: 'refusing to start: {detail}', surfaces: ['config'] },
  // `porthole service install|uninstall` (cli/service.ts): the systemd unit is not written, or not removed.
  PH_2010: { status: 500, message: 'the service\'s config file cannot be read: {detail}', surfaces: ['config'] },
  PH_2011: { status: 500, message: 'the service would not start with this config: {detail}', surfaces: ['config'] },
  PH_2012: { status: 500, message: 'not root: {detail}', surfaces: ['config'] },
  PH_2013: { status: 500, message: 'a different unit is in the way: {detail}', surfaces: ['config'] },
  PH_2014: { status: 500, message: 'bad service arguments: {detail}', surfaces: ['config'] },
  PH_2015: { status: 500, message: 'the service\'s user does not exist: {detail}', surfaces: ['config'] },
  PH_2016: { status: 500, message: 'the unit could not be installed or removed: {detail}', surfaces: ['config'] },

  // HTTP edge (status + porthole-error-code header + short page).
  PH_3000: { status: 404, message: 'no endpoint is bound at {detail}', surfaces: ['edge'] },
  PH_3001: { status: 503, message: 'the endpoint {detail} is offline; its agent is not connected', surfaces: ['edge'] },
  PH_3002: { status: 502, message: 'the agent could not reach its upstream service ({detail})', surfaces: ['edge'] },
  PH_3003: { status: 502, message: 'the upstream service sent an invalid HTTP response ({detail})', surfaces: ['edge'] },
  PH_3004: { status: 504, message: 'the upstream service did not answer in time', surfaces: ['edge'] },
  PH_3005: { status: 431, message: 'request headers too large', surfaces: ['edge'] },
  PH_3006: { status: 502, message: 'upstream response headers too large', surfaces: ['edge'] },
  PH_3007: { status: 400, message: 'malformed request', surfaces: ['edge'] },
  PH_3008: { status: 400, message: 'this endpoint is served over https only', surfaces: ['edge'] },
  PH_3009: { status: 502, message: 'TLS to the upstream service failed ({detail})', surfaces: ['edge'] },
  PH_3012: { status: 400, message: 'ambiguous authority: {detail}', surfaces: ['edge'] },
  PH_3013: { status: 400, message: 'invalid authority: {detail}', surfaces: ['edge'] },
  PH_3014: { status: 400, message: 'request target not served: {detail}; send an origin-form target (/path)', surfaces: ['edge'] },
  PH_3015: { status: 421, message: 'misdirected request: {detail}', surfaces: ['edge'] },
  PH_3016: { status: 421, message: 'the endpoint {detail} is served over plain http only (--schemes http)', surfaces: ['edge'] },
  PH_3102: { status: 403, message: 'denied by the endpoint\'s traffic policy', surfaces: ['edge'] },
  PH_3010: { status: 503, message: 'the endpoint {detail} has too many requests waiting; try again shortly', surfaces: ['edge'] },
  PH_3011: { status: 413, message: 'request body too large to verify (limit {detail})', surfaces: ['edge'] },
  PH_3020: { status: 408, message: 'request headers did not arrive in time', surfaces: ['edge', 'api'] },
  PH_3100: { status: 403, message: 'access denied for your IP address', surfaces: ['edge'] },
  PH_3105: { status: 403, message: 'webhook signature verification failed', surfaces: ['edge'] },
  PH_3106: { status: 401, message: 'a valid JWT is required', surfaces: ['edge'] },
  PH_3101: { status: 401, message: 'authentication required', surfaces: ['edge'] },
  PH_3107: { status: 400, message: 'login failed: the sign-in state is missing, expired or not this browser\'s; open the page again to start over', surfaces: ['edge'] },
  PH_3108: { status: 502, message: 'login failed: the identity provider could not complete the sign-in ({detail})', surfaces: ['edge'] },
  PH_3109: { status: 403, message: 'your account ({detail}) is not allowed on this endpoint', surfaces: ['edge'] },
  PH_3110: { status: 401, message: 'login failed: the identity provider refused the sign-in ({detail})', surfaces: ['edge'] },
  PH_3111: { status: 401, message: 'login required: open this address in the browser to sign in', surfaces: ['edge'] },
  PH_3103: { status: 429, message: 'too many requests: the endpoint\'s rate limit was reached', surfaces: ['edge'] },
  PH_3104: { status: 503, message: 'the endpoint\'s circuit breaker is open: its service has been failing; try again later', surfaces: ['edge'] },

  // Request inspection and replay (inspect/: the replay's caller, or the edge when a replay is misrouted).
  PH_3200: { status: 409, message: 'this request cannot be replayed as captured: its body was cut at the capture cap ({detail}); replay it with an edited body', surfaces: ['api'] },
  PH_3201: { status: 403, message: 'a replay may only reach an endpoint of the owner it was captured for ({detail})', surfaces: ['edge'] },
  PH_3202: { status: 429, message: 'too many replays in progress (limit {detail}); wait for them to finish', surfaces: ['api'] },
  PH_3203: { status: 400, message: 'bad replay edit: {detail}', surfaces: ['api'] },
  PH_3204: { status: 502, message: 'the replay could not be sent through the gateway ({detail})', surfaces: ['api'] },
  // Certificates (the gateway's log, at warn level; the handshake falls back to another certificate).
  PH_4001: { status: 500, message: 'certificate pair skipped: {detail}', surfaces: ['log'] },
  PH_4002: { status: 502, message: 'ACME order failed: {detail}', surfaces: ['log'] },
  PH_4003: { status: 429, message: 'ACME order held back by the rate guard: {detail}', surfaces: ['log'] },

  // Accounts, keys, tokens, reservations and the admin API (JSON errors from the API, lines from the CLI).
  PH_5001: { status: 400, message: 'invalid {detail}', surfaces: ['api'] },
  PH_5002: { status: 409, message: '{detail} already exists', surfaces: ['api'] },
  PH_5003: { status: 404, message: '{detail} not found', surfaces: ['api'] },
  PH_5004: { status: 409, message: '{detail} is reserved by another account', surfaces: ['api'] },
  PH_5005: { status: 401, message: 'a valid API key is required (Authorization: Bearer <key>)', surfaces: ['api'] },
  PH_5006: { status: 405, message: 'method {detail} not allowed here', surfaces: ['api'] },
  PH_5007: { status: 413, message: 'request body too large (limit {detail})', surfaces: ['api'] },
  PH_5008: { status: 503, message: 'the identity store could not be written: {detail}', surfaces: ['api', 'log'] },
  PH_5009: { status: 502, message: 'cannot reach the admin API at {detail}', surfaces: ['api'] },
  PH_5010: { status: 500, message: 'internal error in the admin API; the gateway log has the details', surfaces: ['api'] },
  // The inspector (a session's own view of its requests, reached through the SSH session: inspect/server.ts).
  PH_5030: { status: 429, message: 'too many inspector {detail} for this account; close some and retry', surfaces: ['api'] },
  PH_5031: { status: 404, message: 'captured request {detail} not found (evicted, cleared, or not yours)', surfaces: ['api'] },
  PH_5032: { status: 502, message: 'replay failed: {detail}', surfaces: ['api'] },
  PH_5033: { status: 403, message: 'port forwarding to {detail} is refused: the gateway answers only localhost:4040 (the inspector: ssh -L 4040:localhost:4040)', surfaces: ['ssh', 'log'] },
  PH_5034: { status: 503, message: 'the inspector is off on this gateway', surfaces: ['ssh', 'log'] },
  PH_5035: { status: 403, message: 'the inspector answers only pages opened as localhost, 127.0.0.1 or [::1] ({detail} refused)', surfaces: ['api'] },
} as const satisfies Record<string, CatalogueEntry>

export type ErrorCode = keyof typeof catalogue

export function formatMessage (code: ErrorCode, detail?: string): string {
  const template: string = catalogue[code].message
  return template.replace('{detail}', detail ?? '').replace(/\s+\(\)/, '').trim()
}

/** An error a user can see: it carries its catalogue code and the HTTP status that goes with it. */
export class PortholeError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly detail: string | undefined

  constructor (code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(formatMessage(code, detail), options)
    this.name = 'PortholeError'
    this.code = code
    this.status = catalogue[code].status
    this.detail = detail
  }

  /** The one-line form shown on terminals and in logs: `PH_1001: unknown option --foo`. */
  toLine (): string {
    return `${this.code}: ${this.message}`
  }
}

export function isPortholeError (err: unknown): err is PortholeError {
  return err instanceof PortholeError
}
