// What the SSH user sees on the session channel: the banner with one Forwarding line per endpoint, then a
// line per request; or with --output json one JSON object per line. Output never blocks the tunnel: when
// the user's terminal falls behind, request lines are dropped (and counted) instead of buffered.
import type { ServerChannel } from 'ssh2'
import type { RequestRecord } from '../../core/endpoint.js'
import { PortholeError } from '../../core/errors.js'
import type { OutputMode } from './exec-grammar.js'

const MAX_BUFFERED = 64 * 1024

export interface EndpointLine {
  readonly url: string
  readonly proto: string
  readonly bind: string
}

export class Terminal {
  readonly #stream: ServerChannel
  #pty = false
  #output: OutputMode = 'text'
  #dropped = 0
  #closed = false

  constructor (stream: ServerChannel) {
    this.#stream = stream
    stream.once('close', () => { this.#closed = true })
  }

  get closed (): boolean { return this.#closed }

  set pty (value: boolean) { this.#pty = value }
  set output (value: OutputMode) { this.#output = value }
  get output (): OutputMode { return this.#output }

  #write (text: string, stderr = false): boolean {
    // A client that grants no window makes everything buffer here: past the bound, lines are dropped.
    if (this.#closed || !this.#stream.writable || this.#stream.writableLength > MAX_BUFFERED) return false
    const eol = this.#pty ? '\r\n' : '\n'
    const data = text.replace(/\r?\n/g, eol) + eol
    if (stderr && !this.#pty) this.#stream.stderr.write(data)
    else this.#stream.write(data)
    return true
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

  /** A one-line error, on stderr so scripts see it apart from output. */
  error (line: string): void {
    if (this.#output === 'json') this.#write(JSON.stringify({ event: 'error', message: line }), true)
    else this.#write(line, true)
  }

  /** The banner; `account` (text output only) says whose endpoints these are when logged in as an account. */
  endpoints (lines: readonly EndpointLine[], account?: string): void {
    if (this.#output === 'json') {
      for (const line of lines) this.#write(JSON.stringify({ event: 'endpoint', url: line.url, proto: line.proto, bind: line.bind }))
      return
    }
    const width = 'Forwarding'.length + 2
    const head = account ? ['Porthole', `${'Account'.padEnd(width)}${account}`] : ['Porthole']
    this.#write([...head, ...lines.map((line) => `${'Forwarding'.padEnd(width)}${line.url}`)].join('\n'))
  }

  request (record: RequestRecord, url: string): void {
    if (this.#closed) return
    if (this.#stream.writableLength > MAX_BUFFERED) {
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
      this.#write(JSON.stringify({
        event: 'request',
        url,
        method: record.method,
        path: record.path,
        status: record.status,
        duration_ms: record.durationMs,
        client_ip: record.clientIp,
        ...(record.errorCode ? { error_code: record.errorCode } : {}),
      }))
    } else {
      this.#write(`${record.method} ${record.path} ${record.status} ${record.durationMs}ms${record.errorCode ? ` ${record.errorCode}` : ''}`)
    }
  }

  /** A finished tcp/tls connection. */
  #connection (record: RequestRecord, url: string): void {
    if (this.#output === 'json') {
      this.#write(JSON.stringify({
        event: 'connection', url, client: record.path, duration_ms: record.durationMs, bytes_in: record.bytesIn, bytes_out: record.bytesOut,
      }))
    } else {
      this.#write(`${record.method} ${record.path} closed ${record.durationMs}ms in ${record.bytesIn}B out ${record.bytesOut}B`)
    }
  }

  /**
   * Ends the session with an exit status (0 ok, 1 refused, 255 gateway closing). Resolves once the client
   * closed the channel too (or after a second), so replies sent afterwards cannot overtake the message.
   */
  exit (status: number): Promise<void> {
    if (this.#closed) return Promise.resolve()
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
