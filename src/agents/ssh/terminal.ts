// What the SSH user sees on the session channel: the banner with one Forwarding line per endpoint, then a
// line per request; or with --output json one JSON object per line. With a pty (and text output) the banner
// becomes a live full-screen view instead (terminal-view.ts), left again when the session ends. Output never
// blocks the tunnel: when the user's terminal falls behind, request lines are dropped (and counted) instead
// of buffered, and the live view skips frames.
import type { ServerChannel } from 'ssh2'
import type { RequestRecord } from '../../core/endpoint.js'
import { PortholeError } from '../../core/errors.js'
import type { OutputMode } from './exec-grammar.js'
import { qrText } from './terminal-qr.js'
import { LiveView, inspectorLine, type ViewSession } from './terminal-view.js'

const MAX_BUFFERED = 64 * 1024

export interface EndpointLine {
  readonly url: string
  readonly proto: string
  /** The -R it came from: `bindAddr:port` as the client sent it. */
  readonly bind: string
}

/** The pty the client asked for (pty-req); its size changes with window-change. */
export interface PtyInfo {
  readonly term: string
  readonly cols: number
  readonly rows: number
}

/** How the -R of a Forwarding line is written: `-R myapp:80`; an empty bind address (`-R *:80`) as `*`. */
export function forwardLabel (bind: string): string {
  return `-R ${bind.startsWith(':') ? `*${bind}` : bind}`
}

export class Terminal {
  readonly #stream: ServerChannel
  /** What the live view shows besides the endpoints; without it (tests, old callers) there is no live view. */
  readonly #session: ViewSession | null
  #pty: PtyInfo | null = null
  #output: OutputMode = 'text'
  #qr = false
  #view: LiveView | null = null
  /** Whether a banner was printed (the Web Interface line and the QR code come once, with the first). */
  #bannered = false
  #dropped = 0
  #closed = false
  /** Request lines of this turn of the event loop, sent together (one SSH packet for many: a packet per request
   *  line cost the gateway about as much as a third of a fast-path request). */
  #lines = ''
  #linesScheduled = false

  constructor (stream: ServerChannel, session: ViewSession | null = null) {
    this.#stream = stream
    this.#session = session
    stream.once('close', () => {
      this.#closed = true
      this.#view?.stop()
    })
  }

  get closed (): boolean { return this.#closed }

  /** A pty was granted: request lines end in CRLF, and text output becomes the live view. */
  set pty (value: PtyInfo | null) { this.#pty = value }
  set output (value: OutputMode) { this.#output = value }
  get output (): OutputMode { return this.#output }
  /** --qr: the main URL as a QR code under the banner (or in the live view). */
  set qr (value: boolean) { this.#qr = value }
  /** Whether the live full-screen view is on. */
  get live (): boolean { return this.#view !== null }

  /**
   * The user opened the inspector through this session (a direct-tcpip channel to it, i.e. ssh -L works):
   * the live view stops saying how to reach it.
   */
  inspectorReached (): void {
    this.#view?.inspectorReached()
  }

  /** The client's window changed size (window-change). */
  resize (cols: number, rows: number): void {
    if (this.#pty) this.#pty = { ...this.#pty, cols, rows }
    this.#view?.resize(cols, rows)
  }

  /** Raw bytes to the channel, dropped past the bound: a client that grants no window makes everything buffer here. */
  #send (data: string, stderr = false): boolean {
    if (this.#lines !== '') this.#flushLines() // request lines before it, in order
    if (this.#closed || !this.#stream.writable || this.#stream.writableLength > MAX_BUFFERED) return false
    if (stderr && !this.#pty) this.#stream.stderr.write(data)
    else this.#stream.write(data)
    return true
  }

  /** A request line, sent with the others of this turn. */
  #line (text: string): void {
    const eol = this.#pty ? '\r\n' : '\n'
    this.#lines += (text.includes('\n') ? text.replace(/\r?\n/g, eol) : text) + eol
    if (this.#linesScheduled) return
    this.#linesScheduled = true
    setImmediate(this.#flushLines)
  }

  #flushLines = (): void => {
    this.#linesScheduled = false
    const lines = this.#lines
    this.#lines = ''
    if (lines === '' || this.#closed || !this.#stream.writable) return
    this.#stream.write(lines)
  }

  #write (text: string, stderr = false): boolean {
    const eol = this.#pty ? '\r\n' : '\n'
    return this.#send(text.replace(/\r?\n/g, eol) + eol, stderr)
  }

  /** Everything the user sends on stdin until EOF; throws PH_1002 past maxBytes or past the deadline. */
  readInput (maxBytes: number, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      const stop = (): void => {
        clearTimeout(timer)
        this.#stream.off('data', onData)
      }
      const timer = setTimeout(() => {
        stop()
        reject(new PortholeError('PH_1002', `stdin (no end of input within ${Math.round(timeoutMs / 1000)} s; redirect a file: ... < file)`))
      }, timeoutMs)
      const onData = (chunk: Buffer): void => {
        size += chunk.length
        if (size > maxBytes) {
          stop()
          reject(new PortholeError('PH_1002', `stdin (more than ${maxBytes} bytes)`))
          return
        }
        chunks.push(chunk)
      }
      this.#stream.on('data', onData)
      this.#stream.once('end', () => {
        stop()
        resolve(Buffer.concat(chunks).toString('utf8'))
      })
    })
  }

  /** Free text (help, notices). */
  print (text: string): void {
    this.#write(text.replace(/\r?\n$/, ''))
  }

  /** A one-line error, on stderr so scripts see it apart from output (in the live view: under the URLs). */
  error (line: string): void {
    if (this.#view) this.#view.notice(line)
    else if (this.#output === 'json') this.#write(JSON.stringify({ event: 'error', message: line }), true)
    else this.#write(line, true)
  }

  /**
   * The banner; `account` (text output only) says whose endpoints these are when logged in as an account.
   * `several`: the session has more than one -R, so each Forwarding line names its own.
   */
  endpoints (lines: readonly EndpointLine[], account?: string, several = false): void {
    if (this.#output === 'json') {
      for (const line of lines) this.#write(JSON.stringify({ event: 'endpoint', url: line.url, proto: line.proto, bind: line.bind }))
      return
    }
    if (this.#closed || lines.length === 0) return
    const first = !this.#bannered
    this.#bannered = true
    if (this.#pty && this.#pty.term !== 'dumb' && this.#session) {
      if (!this.#view) {
        this.#view = new LiveView(this.#session, this.#pty, (data) => this.#send(data))
        this.#view.start()
      }
      this.#view.forwards(lines.map((line) => ({ url: line.url, bind: line.bind })))
      if (first && this.#qr) void qrText(lines[0]!.url).then((text) => this.#view?.qr(text))
      return
    }
    const width = 'Forwarding'.length + 2
    const head = account ? ['Porthole', `${'Account'.padEnd(width)}${account}`] : ['Porthole']
    const line = first && this.#session ? inspectorLine(this.#session, false) : null
    const inspector = line ? [`Web Interface  ${line}`] : []
    const forwards = lines.map((line) => `${'Forwarding'.padEnd(width)}${line.url}${several ? `  (${forwardLabel(line.bind)})` : ''}`)
    this.#write([...head, ...forwards, ...inspector].join('\n'))
    if (first && this.#qr) void qrText(lines[0]!.url).then((text) => { if (text) this.#write(text.replace(/\n+$/, '')) })
  }

  /** `url`: the endpoint's URL, asked for only by the JSON output (made per request, it cost as much as the line). */
  request (record: RequestRecord, url: () => string): void {
    if (this.#closed) return
    if (this.#view) {
      this.#view.request(record)
      return
    }
    if (this.#stream.writableLength + this.#lines.length > MAX_BUFFERED) {
      this.#dropped++
      return
    }
    if (this.#dropped > 0) {
      const dropped = this.#dropped
      this.#dropped = 0
      this.#write(this.#output === 'json' ? JSON.stringify({ event: 'dropped', count: dropped }) : `(${dropped} request lines dropped: terminal too slow)`)
    }
    if (record.bytesIn !== undefined) return this.#connection(record, url)
    if (this.#output === 'json') {
      this.#line(JSON.stringify({
        event: 'request',
        url: url(),
        method: record.method,
        path: record.path,
        status: record.status,
        duration_ms: record.durationMs,
        client_ip: record.clientIp,
        ...(record.errorCode ? { error_code: record.errorCode } : {}),
      }))
    } else {
      this.#line(`${record.method} ${record.path} ${record.status} ${record.durationMs}ms${record.errorCode ? ` ${record.errorCode}` : ''}`)
    }
  }

  /** A finished tcp/tls connection. */
  #connection (record: RequestRecord, url: () => string): void {
    if (this.#output === 'json') {
      this.#line(JSON.stringify({
        event: 'connection', url: url(), client: record.path, duration_ms: record.durationMs, bytes_in: record.bytesIn, bytes_out: record.bytesOut,
      }))
    } else {
      this.#line(`${record.method} ${record.path} closed ${record.durationMs}ms in ${record.bytesIn}B out ${record.bytesOut}B`)
    }
  }

  /**
   * Ends the session with an exit status (0 ok, 1 refused, 255 gateway closing). Resolves once the client
   * closed the channel too (or after a second), so replies sent afterwards cannot overtake the message.
   */
  exit (status: number): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#flushLines()
    if (this.#view) {
      // Back to the normal screen; what went wrong stays readable there.
      const view = this.#view
      this.#view = null
      this.#send(view.stop())
      for (const notice of view.notices) this.#write(notice)
    }
    this.#closed = true
    const closed = new Promise<void>((resolve) => {
      this.#stream.once('close', resolve)
      setTimeout(resolve, 1000).unref()
    })
    try {
      this.#stream.exit(status)
      this.#stream.end()
    } catch {}
    return closed
  }
}
