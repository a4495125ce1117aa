// One authenticated SSH client: its remote forwards (tcpip-forward), its session channel (the command line
// and the terminal), and the endpoints they become. Forwards are bound only once the session's options are
// known, so `--basic-auth` can never arrive after an endpoint was already public without it:
//   - OpenSSH sends the forwards, then opens the session and sends exec (or -N: no-more-sessions, no session);
//   - Dropbear opens the session first, then sends the forwards and exec (want_reply = 0), in either order;
//   - Dropbear -N sends forwards and nothing else: after a short settle time (settleMs) they bind with defaults.
// A session channel that exists is always waited for, however slow its exec/shell (a slow link, a stalled
// gateway): up to commandWaitMs, then the forwards are refused (PH_1022). Options that come after the forwards
// were bound with defaults (a session opened past the settle, e.g. a library awaiting forwardIn's reply before
// its exec) cannot apply to endpoints already public: the command is refused (PH_1040), the endpoints are
// taken down and the session ends with status 1. The waiting itself is session-options.ts.
import type { Socket } from 'node:net'
import type { Connection, ServerChannel, Session, TcpipBindInfo, TcpipRequestInfo } from 'ssh2'
import type { Logger } from 'pino'
import { PortholeError, isPortholeError } from '../../core/errors.js'
import { StreamsFullError, type ClientAddress, type Endpoint, type EndpointProto, type Owner, type RequestRecord } from '../../core/endpoint.js'
import { bindNamed, bindTcp, type EndpointContext } from '../bind.js'
import type { CredentialKind, SessionInfo } from '../../core/session.js'
import type { CompiledPolicy, CompileOptions, RuleError } from '../../policy/compiled.js'
import { ruleErrorLine } from '../../policy/compile.js'
import { commandShape, parseCommand, specFor, withStdin, type SessionOptions } from './exec-grammar.js'
import { SessionOptionsLifecycle, type OptionsState } from './session-options.js'
import { Terminal, type EndpointLine, type PtyInfo } from './terminal.js'
import type { ViewSession } from './terminal-view.js'
import { portholeVersion } from './terminal-qr.js'
import { noteForward, ownedUrls, urlsJson, urlsText } from './urls-command.js'
import { diagnose, diagnoseJson, diagnoseText, measureRtt, type IdentityView } from './diagnose-command.js'
import { abortUnfinished, halfClosing, socketDestroy } from './tunnel-stream.js'
import { noWindowAfterClose } from './channel-close.js'
import { acceptsDirect, inspectorView } from './inspector-access.js'
import type { Inspector } from '../../inspect/server.js'
import { observeDial, observeLimit } from '../../observe/channels.js'

export interface ConnectionContext extends EndpointContext {
  readonly maxForwards: number
  readonly maxChannels: number
  /** The port reported for -R 0 (the HTTP edge's port); made unique per session. */
  readonly defaultAllocatedPort: number
  /** ms an open session has to send its command (exec/shell) once a forward waits; also the stdin deadline. */
  readonly commandWaitMs: number
  /** ms the forwards of a client with no session channel wait before binding with defaults (Dropbear -N). */
  readonly settleMs: number
  /** Answers `-L ...:localhost:4040` (direct-tcpip) with the owner's inspector; null: the inspector is off. */
  readonly inspector?: Inspector | null
  /** The port the session's inspector answers on through -L (the banner's hint); null: no inspector. Default 4040. */
  readonly inspectorPort?: number | null
  /** The identity store, for `diagnose` (the credential's ACL, the account's reservations). */
  readonly identity?: IdentityView
}

type Accept = ((port?: number) => void) | undefined
type Reject = (() => void) | undefined

/** Who is on the other end of a connection, as the login found out. */
export interface SessionLogin {
  readonly owner: Owner
  readonly credential: { readonly kind: CredentialKind, readonly id: string | null }
  readonly fingerprint: string | null
  readonly clientVersion: string
  readonly remoteAddr: string
  readonly remotePort: number
  /** The client's whole identification line (`SSH-2.0-OpenSSH_9.2p1 Debian-2`), when known. */
  readonly clientIdent?: string
}

interface Forward {
  readonly bindAddr: string
  readonly bindPort: number
  /** The port the client hears back and finds in forwarded-tcpip channels (the allocated one for -R 0). */
  replyPort: number
  accept: Accept
  reject: Reject
  endpoint: Endpoint | null
  /** Not yet answered (bound or refused). */
  pending: boolean
  /** A bind is under way (tcp binds wait for their listener). */
  binding?: boolean
  /** Refused on arrival; reported once the terminal exists (see #bindPending). */
  refusal?: PortholeError
}

const HTTP_PORTS = new Set([80, 443, 0])
/** What a session may send on stdin (CA certificates; later policy documents). */
const MAX_STDIN_BYTES = 256 * 1024
/** How often the terminal is told that max-streams-per-session turned visitors away (PH_1122). */
const STREAMS_FULL_TELL_MS = 60_000
const CTRL_C = 0x03
const CTRL_D = 0x04

/** A terminal dimension from the client: a positive integer up to 10000, else `fallback`. */
function sane (value: number | undefined, fallback: number): number {
  return Number.isInteger(value) && value! > 0 && value! <= 10_000 ? value! : fallback
}

export class SshConnection {
  readonly id: string
  readonly owner: Owner
  readonly login: SessionLogin
  /** ms since the epoch (a number: a Date per idle session costs ~100 bytes). */
  readonly #startedAt = Date.now()
  readonly #client: Connection
  readonly #ctx: ConnectionContext
  readonly #log: Logger
  readonly #forwards: Forward[] = []
  readonly #options: SessionOptionsLifecycle
  #sessionOpen = false
  #terminal: Terminal | null = null
  #openChannels = 0
  /** When PH_1122 was last told (performance.now()); -Infinity: never. */
  #streamsFullToldAt = -Infinity
  /** The forwarded-tcpip channels open now: the ones the agent has not ended fail when the session goes
   *  (made with the first one: an idle session holds none). */
  #channels: Set<ServerChannel> | null = null
  #closed = false
  /** The -L destinations refused so far (each is reported once; made with the first). */
  #refusedDirect: Set<string> | null = null
  /** Binds run one batch at a time, in request order. */
  #binding: Promise<void> = Promise.resolve()

  /** `log` is the connection's logger, already bound to the session id and owner. */
  constructor (id: string, client: Connection, login: SessionLogin, ctx: ConnectionContext, log: Logger) {
    this.id = id
    this.#client = client
    this.login = login
    const owner = login.owner
    this.owner = owner
    this.#ctx = ctx
    this.#log = log
    this.#options = new SessionOptionsLifecycle({
      settleMs: ctx.settleMs,
      commandWaitMs: ctx.commandWaitMs,
      noMoreSessions: () => client.noMoreSessions,
      socket: (client as unknown as { _sock?: Socket })._sock,
      bind: () => this.#bindPending(),
      refuseWaiting: () => this.#refuseWaiting(),
      timedOut: () => new PortholeError('PH_1022', this.#forwards.filter((f) => f.pending).map((f) => `${f.bindAddr}:${f.bindPort}`).join(', ')),
    })
    client.on('request', (accept, reject, name, info) => this.#onGlobalRequest(accept, reject, name, info as TcpipBindInfo))
    // One terminal per connection: further session channels (ssh multiplexing) are refused outright.
    client.on('session', (accept, reject) => (this.#sessionOpen ? reject() : this.#onSession(accept())))
    // `ssh -L PORT:localhost:4040`: the gateway answers with the owner's inspector; it never dials anything.
    client.on('tcpip', (accept, reject, info) => this.#onDirect(accept, reject, info))
    client.once('close', () => this.#onClose())
    client.once('end', () => this.#onClose())
    client.on('error', (error: Error & { level?: string }) => {
      // No answer to our liveness pings: the client is gone (or frozen). Free its names now, not when
      // the TCP connection finally times out, and drop the socket.
      if (error.level === 'client-timeout') {
        this.#onClose()
        ;(client as unknown as { _sock?: { destroy: () => void } })._sock?.destroy()
      }
    })
  }

  get startedAt (): Date {
    return new Date(this.#startedAt)
  }

  get endpoints (): Endpoint[] {
    return this.#forwards.flatMap((f) => (f.endpoint ? [f.endpoint] : []))
  }

  describe (): SessionInfo {
    const socket = (this.#client as unknown as { _sock?: { bytesRead?: number, bytesWritten?: number } })._sock
    const account = this.owner.account ?? null
    return {
      id: this.id,
      clientType: 'ssh',
      account,
      credential: this.login.credential,
      fingerprint: this.login.fingerprint,
      clientVersion: this.login.clientVersion,
      remoteAddr: this.login.remoteAddr,
      remotePort: this.login.remotePort,
      startedAt: this.startedAt.toISOString(),
      bytesIn: socket?.bytesRead ?? 0,
      bytesOut: socket?.bytesWritten ?? 0,
      openStreams: this.#openChannels,
      endpoints: this.endpoints.map((endpoint) => ({
        id: endpoint.id,
        urls: this.#ctx.urlsFor(endpoint),
        proto: endpoint.spec.proto,
        host: endpoint.host,
        sessionId: this.id,
        account,
      })),
    }
  }

  // --- global requests ---------------------------------------------------------------------------------

  #onGlobalRequest (accept: Accept, reject: Reject, name: string, info: TcpipBindInfo): void {
    if (name === 'tcpip-forward') return this.#onForward(accept, reject, info)
    if (name === 'cancel-tcpip-forward') return this.#onCancel(accept, reject, info)
    if (name === 'streamlocal-forward@openssh.com') {
      const path = (info as unknown as { socketPath?: string }).socketPath ?? ''
      return this.#enqueue({ bindAddr: path, bindPort: -1, replyPort: -1, accept, reject, endpoint: null, pending: true, refusal: new PortholeError('PH_1015', path) })
    }
    reject?.()
  }

  /**
   * Queues a forward until the session's options (and terminal) are known. Refused ones count too. The first
   * forward past max-forwards-per-session is queued as a refusal, so that the session's terminal (open later, or
   * not yet written to) gets its PH_1018 line before the global request fails, as other refusals do; the ones
   * after it are refused at once (the queue stays bounded), with the line when a terminal is open.
   */
  #enqueue (forward: Forward): void {
    if (this.#closed) return forward.reject?.()
    if (this.#forwards.length >= this.#ctx.maxForwards) {
      this.#log.info({ limit: this.#ctx.maxForwards }, 'forward refused: too many in this session')
      const error = new PortholeError('PH_1018', String(this.#ctx.maxForwards))
      observeLimit(error)
      if (this.#forwards.length > this.#ctx.maxForwards) {
        this.#terminal?.error(error.toLine())
        return forward.reject?.()
      }
      forward = { ...forward, refusal: error }
    }
    this.#forwards.push(forward)
    this.#options.forwardWaiting()
  }

  #onForward (accept: Accept, reject: Reject, info: TcpipBindInfo): void {
    const bindAddr = info.bindAddr
    const bindPort = info.bindPort
    const label = `${bindAddr}:${bindPort}`
    const duplicate = this.#forwards.some((f) => f.bindAddr === bindAddr && (f.bindPort === bindPort || (bindPort !== 0 && f.replyPort === bindPort)))
    this.#log.debug({ bind: label }, 'forward requested')
    this.#enqueue({
      bindAddr,
      bindPort,
      replyPort: bindPort === 0 ? this.#allocatePort(bindAddr) : bindPort,
      accept,
      reject,
      endpoint: null,
      pending: true,
      ...(duplicate ? { refusal: new PortholeError('PH_1017', label) } : {}),
    })
  }

  #onCancel (accept: Accept, reject: Reject, info: TcpipBindInfo): void {
    const index = this.#forwards.findIndex((f) => f.bindAddr === info.bindAddr && f.replyPort === info.bindPort)
    if (index === -1) return reject?.()
    const [forward] = this.#forwards.splice(index, 1)
    this.#answer(forward!, null)
    if (forward!.endpoint) {
      this.#ctx.registry.unbind(forward!.endpoint)
      this.#log.info({ host: forward!.endpoint.host }, 'endpoint cancelled')
      forward!.endpoint = null
    }
    accept?.()
  }

  #allocatePort (bindAddr: string): number {
    let port = this.#ctx.defaultAllocatedPort
    while (this.#forwards.some((f) => f.bindAddr === bindAddr && f.replyPort === port)) port++
    return port
  }

  // --- direct-tcpip (-L): the inspector, nothing else ---------------------------------------------------

  #onDirect (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): void {
    const inspector = this.#ctx.inspector ?? null
    const target = `${info.destIP}:${info.destPort}`
    const refusal = !acceptsDirect(info.destIP, info.destPort)
      ? new PortholeError('PH_5033', target)
      : (inspector === null || this.#closed ? new PortholeError('PH_5034') : null)
    if (refusal) {
      // The client only prints "administratively prohibited": the terminal (when there is one) says why,
      // once per destination (a client retrying in a loop must not flood the terminal or the log).
      this.#refusedDirect ??= new Set()
      if (this.#refusedDirect.size < 16 && !this.#refusedDirect.has(target)) {
        this.#refusedDirect.add(target)
        this.#log.info({ code: refusal.code, target }, refusal.message)
        this.#terminal?.error(refusal.toLine())
      }
      reject()
      return
    }
    const channel = accept()
    inspector!.serve(channel, inspectorView(this.#ctx, this.owner, this.#inspectorSession()))
    this.#terminal?.inspectorReached()
  }

  /** What the inspector's views need of this session: its forwards (for config.addr) and a summary. */
  #inspectorSession (): { forwardOf: (endpoint: Endpoint) => string | undefined, describe: () => Record<string, unknown> } {
    return {
      forwardOf: (endpoint) => this.#forwardOf(endpoint),
      describe: () => ({ id: this.id, client_version: this.login.clientVersion, remote_addr: this.login.remoteAddr, started_at: this.startedAt.toISOString() }),
    }
  }

  // --- the session channel: command line and terminal ---------------------------------------------------

  #onSession (session: Session): void {
    this.#sessionOpen = true
    let pty: PtyInfo | null = null
    session.on('pty', (accept, _reject, info) => {
      pty = { term: String(info?.term ?? ''), cols: sane(info?.cols, 80), rows: sane(info?.rows, 24) }
      accept?.()
    })
    session.on('window-change', (accept, _reject, info) => {
      accept?.()
      if (!pty) return
      pty = { ...pty, cols: sane(info?.cols, pty.cols), rows: sane(info?.rows, pty.rows) }
      this.#terminal?.resize(pty.cols, pty.rows)
    })
    session.on('env', (accept) => accept?.())
    session.on('signal', (accept) => accept?.())
    session.on('auth-agent', (_accept, reject) => reject?.())
    session.on('x11', (_accept, reject) => reject?.())
    session.on('subsystem', (_accept, reject) => reject?.())
    session.on('sftp', (_accept, reject) => reject?.())
    const start = (accept: () => ServerChannel, command: string): void => {
      const stream = accept()
      const terminal = new Terminal(stream, this.#viewSession())
      terminal.pty = pty
      this.#terminal = terminal
      stream.on('data', (data: Buffer) => {
        // In a pty, Ctrl-C and Ctrl-D arrive as bytes: they end the session like they would a local program.
        if (pty && (data.includes(CTRL_C) || data.includes(CTRL_D))) void this.#quit()
      })
      stream.stderr.on('error', () => {})
      stream.on('error', () => {})
      void this.#onCommand(command)
    }
    session.once('exec', (accept, _reject, info) => start(accept, info.command))
    session.once('shell', (accept) => start(accept, ''))
    this.#options.sessionOpened(this.#forwards.some((f) => f.pending))
  }

  async #onCommand (command: string): Promise<void> {
    const terminal = this.#terminal!
    if (!this.#options.commandArrived()) return this.#onLateCommand(command, this.#options.state)
    let options: SessionOptions
    try {
      const parsed = parseCommand(command, this.#ctx.compile)
      if (parsed.kind === 'help') {
        terminal.print(parsed.text)
        this.#options.refused(null)
        void this.#exitThenFail(0)
        return
      }
      if (parsed.kind === 'urls') {
        this.#options.refused(new PortholeError('PH_1090'))
        this.#listUrls(terminal, parsed.output)
        if (this.#forwards.length > 0) this.#refuse(new PortholeError('PH_1090'))
        void this.#exitThenFail(0)
        return
      }
      if (parsed.kind === 'diagnose') {
        this.#options.refused(new PortholeError('PH_1101'))
        if (this.#forwards.length > 0) this.#refuse(new PortholeError('PH_1101'))
        await this.#diagnose(terminal, parsed.output)
        void this.#exitThenFail(0)
        return
      }
      terminal.output = parsed.options.output
      terminal.qr = parsed.view.qr
      // Some options come on stdin (`... --upstream-tls-verify-cas - < ca.pem`): forwards wait for it.
      options = parsed.options.stdin ? withStdin(parsed.options, await terminal.readInput(MAX_STDIN_BYTES, this.#ctx.commandWaitMs), this.#ctx.compile) : parsed.options
    } catch (error) {
      const err = isPortholeError(error) ? error : new PortholeError('PH_1002', String(error))
      this.#options.refused(err)
      terminal.error(err.toLine())
      // Not the command line itself: flag values may be secrets (--basic-auth, --oidc-client-secret, ...).
      this.#log.info({ code: err.code, flags: command.match(/--?[A-Za-z][\w-]*/g)?.slice(0, 32) ?? [] }, err.message)
      void this.#exitThenFail(1)
      return
    }
    if (this.#closed) return
    this.#options.known(options)
    if (this.#forwards.length > 0) this.#bindPending()
    else this.#awaitForwards()
  }

  /**
   * A command on a session opened after the forwards were bound with defaults (or refused): options can no
   * longer apply. Only a command without options (a shell, `--help`) is welcome; anything else is refused
   * out loud, and endpoints public without the options the user asked for are taken down.
   */
  async #onLateCommand (command: string, state: OptionsState): Promise<void> {
    const terminal = this.#terminal!
    if (state.state === 'refused') {
      terminal.error((state.error ?? new PortholeError('PH_1040', commandShape(command))).toLine())
      await terminal.exit(1)
      return
    }
    if (command.trim() === '') {
      // The terminal of endpoints bound without a session: show them.
      const bound = this.endpoints
      if (bound.length > 0) terminal.endpoints(this.#lines(bound), this.owner.account, this.#forwards.length > 1)
      return
    }
    try {
      const parsed = parseCommand(command, this.#ctx.compile)
      if (parsed.kind === 'help') {
        terminal.print(parsed.text)
        await terminal.exit(0)
        return
      }
    } catch {}
    const error = new PortholeError('PH_1040', commandShape(command))
    this.#log.info({ code: error.code, endpoints: this.endpoints.map((e) => e.host) }, error.message)
    this.#onClose() // unbinds now: the endpoints lack the options the user just asked for
    terminal.error(error.toLine())
    await terminal.exit(1)
    this.#client.end()
  }

  /** A session with a command but no -R: say how to use the gateway, unless forwards follow shortly (Dropbear). */
  #awaitForwards (): void {
    setTimeout(() => {
      if (this.#closed || this.#forwards.length > 0 || !this.#terminal) return
      this.#terminal.error(new PortholeError('PH_1019', 'gateway').toLine())
      void this.#terminal.exit(1)
    }, this.#ctx.commandWaitMs).unref()
  }

  /** Forwards are refused (a bad command, none in time): answer the ones that wait, saying why. */
  #refuseWaiting (): void {
    const state = this.#options.state
    const error = state.state === 'refused' ? state.error : null
    if (error) this.#refuse(error)
    this.#failPending()
  }

  /** What the live view shows about this session. */
  #viewSession (): ViewSession {
    const { account } = this.owner
    const { credential, fingerprint } = this.login
    const via = credential.kind === 'token' ? `authtoken ${credential.id ?? ''}`.trim() : fingerprint ? `key ${fingerprint}` : null
    const port = this.#ctx.inspectorPort === undefined ? 4040 : this.#ctx.inspectorPort
    return {
      account: account ? `${account}${via ? ` (${via})` : ''}` : `${via ?? 'anonymous'}${credential.kind === 'anonymous' ? ' (anonymous)' : ''}`,
      version: portholeVersion(),
      inspector: port === null ? null : { url: `http://localhost:${port}`, hint: `(ssh -L ${port}:localhost:${port} ...)` },
      open: () => this.#openChannels,
    }
  }

  /** `ssh gateway urls`: the URLs of this owner's endpoints online now, on stdout; none: a word on stderr. */
  #listUrls (terminal: Terminal, output: 'text' | 'json'): void {
    const urls = ownedUrls(this.#ctx.registry, this.#ctx.urlsFor, this.owner)
    if (urls.length > 0) terminal.print(output === 'json' ? urlsJson(urls) : urlsText(urls))
    else if (output === 'text') terminal.error('No endpoints online for this key.')
  }

  /** `ssh gateway diagnose`: what the gateway sees of this connection, on stdout (diagnose-command.ts). */
  async #diagnose (terminal: Terminal, output: 'text' | 'json'): Promise<void> {
    const rttMs = await measureRtt(this.#client)
    if (this.#closed) return
    const ident = (this.login.clientIdent ?? this.login.clientVersion).replace(/[^\x20-\x7e]/g, '?')
    const report = diagnose({
      login: { ...this.login, clientVersion: ident },
      owner: this.owner,
      identity: this.#ctx.identity,
      endpoints: ownedUrls(this.#ctx.registry, this.#ctx.urlsFor, this.owner),
      rttMs,
    })
    terminal.print(output === 'json' ? diagnoseJson(report) : diagnoseText(report))
  }

  /** Ctrl-C (or Ctrl-D) in a pty: the session ends as on a clean disconnect (endpoints unbound), status 0. */
  async #quit (): Promise<void> {
    if (this.#closed) return
    this.#log.info('session ended by the user (Ctrl-C or Ctrl-D)')
    this.#onClose()
    await this.#terminal?.exit(0)
    this.#client.end()
  }

  // --- binding ---------------------------------------------------------------------------------------

  /** Binds the pending forwards one after another (tcp ones wait for their listener), then prints them. */
  #bindPending (): void {
    this.#binding = this.#binding.then(() => this.#bindPendingNow())
  }

  async #bindPendingNow (): Promise<void> {
    const state = this.#options.state
    if (state.state !== 'known') return
    const options = state.options
    const bound: Endpoint[] = []
    let refused = 0
    for (const forward of [...this.#forwards]) {
      if (!forward.pending || forward.binding) continue
      forward.binding = true
      try {
        const endpoint = await this.#bind(forward, options)
        forward.endpoint = endpoint
        bound.push(endpoint)
        this.#answer(forward, true)
      } catch (error) {
        this.#refuse(isPortholeError(error) ? error : new PortholeError('PH_1002', String(error)))
        refused++
      }
    }
    if (this.#closed) return
    if (refused > 0) {
      // Nothing bound at all: the session has no purpose; end it with status 1 (see #exitThenFail).
      if (this.endpoints.length === 0) void this.#exitThenFail(1)
      else this.#failPending()
    }
    if (bound.length > 0) this.#terminal?.endpoints(this.#lines(bound), this.owner.account, this.#forwards.length > 1)
  }

  #lines (endpoints: readonly Endpoint[]): EndpointLine[] {
    return endpoints.flatMap((endpoint) => this.#ctx.urlsFor(endpoint).map((url) => ({ url, proto: endpoint.spec.proto, bind: this.#forwardOf(endpoint)! })))
  }

  #forwardOf (endpoint: Endpoint): string | undefined {
    const forward = this.#forwards.find((f) => f.endpoint === endpoint)
    return forward ? `${forward.bindAddr}:${forward.replyPort}` : undefined
  }

  /** The endpoint kind a forward becomes: the command's, or with none, http for ports 80/443/0 and tcp otherwise. */
  #protoFor (forward: Forward, options: SessionOptions): EndpointProto {
    const proto = options.command ?? (HTTP_PORTS.has(forward.bindPort) ? 'http' : 'tcp')
    if (proto === 'http' && !HTTP_PORTS.has(forward.bindPort)) throw new PortholeError('PH_1014', String(forward.bindPort))
    if (proto === 'tls' && forward.bindPort !== 443 && forward.bindPort !== 0) throw new PortholeError('PH_1033', String(forward.bindPort))
    if (proto === 'tcp') {
      const addr = forward.bindAddr.toLowerCase()
      if (addr !== '' && addr !== 'localhost' && addr !== '*' && addr !== '0.0.0.0' && !this.#ctx.tcpHosts.includes(addr)) {
        throw new PortholeError('PH_1034', JSON.stringify(forward.bindAddr))
      }
    }
    return proto
  }

  async #bind (forward: Forward, options: SessionOptions): Promise<Endpoint> {
    if (forward.refusal) throw forward.refusal
    const proto = this.#protoFor(forward, options)
    // A rule whose expression fails at run time says so once, on this session's terminal.
    const onRuleError = (error: RuleError): void => this.#terminal?.error(ruleErrorLine(error))
    const { spec, compiled } = specFor(options, proto, { ...this.#ctx.compile, onRuleError })
    const url = (): string => this.#ctx.urlsFor(endpoint)[0]!
    const request = {
      slot: `${forward.bindAddr}:${forward.bindPort}`,
      spec,
      owner: this.owner,
      dial: (client: ClientAddress) => this.#dial(forward, client),
      agent: { transport: 'ssh' as const, sessionId: this.id },
      hooks: {
        onRequest: (record: RequestRecord) => this.#terminal?.request(record, url),
        onEvicted: (reason?: Error) => {
          forward.endpoint = null
          const line = reason instanceof PortholeError ? reason.toLine() : new PortholeError('PH_1023', url()).toLine()
          this.#terminal?.error(line)
          this.#log.info({ host: endpoint.host, reason: line }, 'endpoint removed by the registry')
        },
      },
    }
    const endpoint = proto === 'tcp'
      ? await bindTcp(this.#ctx, { ...request, port: forward.bindPort, range: this.#ctx.tcpPorts }, compiled, this.#log)
      : await bindNamed(this.#ctx, { ...request, bindAddr: forward.bindAddr }, compiled)
    if (proto === 'tcp') forward.replyPort = endpoint.port!
    noteForward(endpoint, `${forward.bindAddr}:${forward.replyPort}`)
    if (this.#closed) {
      // The client left while we were binding: leave nothing behind.
      this.#ctx.registry.unbind(endpoint)
      throw new PortholeError('PH_1021')
    }
    this.#log.info({ host: endpoint.host, bind: `${forward.bindAddr}:${forward.bindPort}` }, 'endpoint bound')
    return endpoint
  }

  /**
   * The visitor turned away at max-streams-per-session gets a 502 (PH_3002); the user is told on the terminal and
   * in the log, at most once a minute (a busy tunnel would otherwise fill the terminal with the same line).
   */
  #tellStreamsFull (): void {
    const error = new PortholeError('PH_1122', String(this.#ctx.maxChannels))
    observeLimit(error)
    const now = performance.now()
    if (now - this.#streamsFullToldAt < STREAMS_FULL_TELL_MS) return
    this.#streamsFullToldAt = now
    this.#log.warn({ limit: this.#ctx.maxChannels }, error.toLine())
    this.#terminal?.error(error.toLine())
  }

  /** Opens a forwarded-tcpip channel carrying exactly the bind address and port the client asked for. */
  #dial (forward: Forward, client: ClientAddress): Promise<ServerChannel> {
    // Counted from the request on, not from the client's confirmation: a burst cannot get past the limit.
    const started = performance.now()
    if (this.#openChannels >= this.#ctx.maxChannels) {
      observeDial('ssh', started, 'busy')
      this.#tellStreamsFull()
      return Promise.reject(new StreamsFullError(this.#ctx.maxChannels))
    }
    this.#openChannels++
    return new Promise((resolve, reject) => {
      this.#client.forwardOut(forward.bindAddr, forward.replyPort, client.remoteAddress, client.remotePort, (err, channel) => {
        observeDial('ssh', started, err ? 'refused' : this.#closed ? 'closed' : 'ok')
        if (err) {
          this.#openChannels--
          reject(new PortholeError('PH_3002', err.message.replace(/^\(SSH\) /, ''), { cause: err }))
          return
        }
        if (this.#closed) { // the session ended while the agent was opening it: nothing may outlive it
          this.#openChannels--
          channel.destroy()
          reject(new PortholeError('PH_3001', forward.endpoint?.host ?? forward.bindAddr))
          return
        }
        ;(this.#channels ??= new Set()).add(channel)
        channel.once('close', () => {
          this.#openChannels--
          this.#channels?.delete(channel)
        })
        resolve(socketDestroy(noWindowAfterClose(halfClosing(channel))))
      })
    })
  }

  // --- replies and endings ------------------------------------------------------------------------------

  #answer (forward: Forward, ok: boolean | null): void {
    const { accept, reject } = forward
    forward.pending = false
    forward.accept = undefined
    forward.reject = undefined
    if (ok === true) accept?.(forward.bindPort === 0 ? forward.replyPort : undefined)
    else if (ok === false) reject?.()
  }

  /**
   * Ends the session, then refuses the pending forwards. In this order because OpenSSH with
   * ExitOnForwardFailure exits the moment a refusal arrives, before printing what the session said.
   */
  async #exitThenFail (status: number): Promise<void> {
    if (this.#terminal) await this.#terminal.exit(status)
    this.#failPending()
  }

  #failPending (): void {
    for (const forward of [...this.#forwards]) {
      if (!forward.pending) continue
      this.#answer(forward, false)
      this.#forwards.splice(this.#forwards.indexOf(forward), 1)
    }
  }

  #refuse (error: PortholeError): void {
    this.#log.info({ code: error.code }, error.message)
    this.#terminal?.error(error.toLine())
  }

  /**
   * Tells the user why the session ends (shutdown, kill) and closes it: the channel first, so the message
   * is printed before the connection goes (OpenSSH drops unprinted output when disconnected).
   */
  async end (error?: PortholeError): Promise<void> {
    if (error) this.#terminal?.error(error.toLine())
    await this.#terminal?.exit(error ? 255 : 0)
    this.#client.end()
  }

  /**
   * Ends the session now (operator's kill, revoked credential): endpoints are unbound at once (the owner
   * keeps its names for the grace period, as after a disconnect), and a client that does not close its side
   * is cut off after a moment.
   */
  async kill (error: PortholeError): Promise<void> {
    this.#log.info({ code: error.code }, 'session killed')
    this.#onClose() // unbinds now, as when the client goes; the terminal still gets the reason below
    const socket = (this.#client as unknown as { _sock?: { destroy: () => void } })._sock
    const cutOff = setTimeout(() => socket?.destroy(), 2000)
    cutOff.unref()
    await Promise.race([this.end(error), new Promise((resolve) => setTimeout(resolve, 2000).unref())])
  }

  #onClose (): void {
    if (this.#closed) return
    this.#closed = true
    this.#options.refused(new PortholeError('PH_1021'))
    for (const channel of this.#channels ?? []) abortUnfinished(channel)
    for (const forward of this.#forwards) {
      if (forward.endpoint) {
        this.#ctx.registry.unbind(forward.endpoint)
        this.#log.info({ host: forward.endpoint.host }, 'endpoint unbound')
        forward.endpoint = null
      }
    }
    this.#forwards.length = 0
  }
}
