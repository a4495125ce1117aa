// One frame of the full-screen terminal view (ngrok's layout): session status, account, version, the
// inspector hint, one Forwarding line per URL naming its -R, the connection counters, an optional QR code,
// then the last requests with status colours. A pure function of the model and the window size, so it is
// unit-tested alone; every line fits the width (no wrapping: a wrapped line would scroll the screen), and
// text that strangers chose (paths, methods) is stripped of control characters before it reaches a terminal.
import { STATUS_CODES } from 'node:http'
import type { StatsSnapshot } from './terminal-stats.js'

export interface ScreenForward {
  readonly url: string
  /** The -R it came from, as the client sent it: `myapp:80`, `localhost:80`. */
  readonly bind: string
}

export interface ScreenRequest {
  /** ms since epoch the request ended. */
  readonly at: number
  readonly method: string
  readonly path: string
  readonly status: number
  readonly durationMs: number
  readonly errorCode?: string
  /** tcp/tls connections: bytes from and to the public client. */
  readonly bytesIn?: number
  readonly bytesOut?: number
}

export interface ScreenModel {
  readonly status: string
  readonly account: string
  readonly version: string
  /** The Web Interface line, or null when the gateway has no inspector. */
  readonly inspector: string | null
  readonly forwards: readonly ScreenForward[]
  readonly stats: StatsSnapshot
  /** Streams open through the tunnel now. */
  readonly open: number
  /** Oldest first. */
  readonly requests: readonly ScreenRequest[]
  /** Errors said since the view started (a rule failing, an endpoint removed), oldest first. */
  readonly notices: readonly string[]
  /** The QR code of the main URL (the qrcode library's terminal output), or null. */
  readonly qr: string | null
}

type Style = 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'cyan'
const SGR: Record<Style, string> = { bold: '1', dim: '2', red: '31', green: '32', yellow: '33', cyan: '36' }

/** A line as pieces of text, each with an optional style. */
type Piece = readonly [text: string, style?: Style]

/** ngrok's label column; narrower on a narrow window, so that the six counters still fit. */
const LABEL = 30
const MIN_LABEL = 16
const COLUMN = 8
const STATUS = 18
const ERROR_CODE = 9
/** Stray control characters (ESC, CR, BEL ...) in text from outside would drive the user's terminal. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g

export function clean (text: string): string {
  return text.replace(CONTROL, '?')
}

/** The pieces cut to `width` visible characters (control characters made harmless), their styles as SGR sequences. */
function fit (pieces: readonly Piece[], width: number): string {
  let out = ''
  let left = width
  for (const [raw, style] of pieces) {
    if (left <= 0) break
    const text = clean(raw)
    const part = text.length > left ? text.slice(0, left) : text
    left -= part.length
    out += style ? `\x1b[${SGR[style]}m${part}\x1b[0m` : part
  }
  return out
}

function statusStyle (status: number): Style | undefined {
  if (status >= 500) return 'red'
  if (status >= 400) return 'yellow'
  if (status >= 300) return 'cyan'
  if (status >= 200) return 'green'
  return undefined
}

function ms (value: number | null): string {
  if (value === null) return '-'
  return value < 10 ? `${value.toFixed(1)}ms` : `${Math.round(value)}ms`
}

function clock (at: number): string {
  return new Date(at).toISOString().slice(11, 23)
}

function requestLine (request: ScreenRequest, width: number): Piece[] {
  // time 14, method 8, the path, status STATUS, duration 8, the error code: the path takes what is left (20-60).
  const time: Piece = [`${clock(request.at)}  `, 'dim']
  if (request.bytesIn !== undefined) {
    return [time, [`${clean(request.method).padEnd(7)} ${clean(request.path).padEnd(22)} closed ${ms(request.durationMs).padStart(7)}  in ${request.bytesIn}B out ${request.bytesOut ?? 0}B`]]
  }
  const status = `${request.status} ${STATUS_CODES[request.status] ?? ''}`.trim()
  const pathWidth = Math.min(60, Math.max(20, width - 14 - 8 - (STATUS + 1) - 8 - ERROR_CODE))
  const path = clean(request.path)
  return [
    time,
    [`${clean(request.method).padEnd(7)} `],
    [`${path.length > pathWidth ? `${path.slice(0, pathWidth - 1)}…` : path.padEnd(pathWidth)} `],
    [status.padEnd(STATUS).slice(0, STATUS), statusStyle(request.status)],
    [` ${ms(request.durationMs).padStart(7)}`],
    ...(request.errorCode ? [[`  ${request.errorCode}`, 'red'] as Piece] : []),
  ]
}

/** The frame's lines (at most `rows`, each at most `cols` visible characters). */
export function renderScreen (model: ScreenModel, cols: number, rows: number): string[] {
  const width = Math.max(1, cols)
  const label = Math.min(LABEL, Math.max(MIN_LABEL, width - 6 * COLUMN))
  const field = (name: string, value: string, style?: Style): Piece[] => [[name.padEnd(label)], [value, style]]
  const quit = '(Ctrl+C to quit)'
  const lines: Piece[][] = [
    [['Porthole', 'bold'], [width >= 8 + 2 + quit.length ? `${' '.repeat(width - 8 - quit.length)}${quit}` : '']],
    [],
    field('Session Status', model.status, model.status === 'online' ? 'green' : 'yellow'),
    field('Account', model.account),
    field('Version', model.version),
    ...(model.inspector ? [field('Web Interface', model.inspector)] : []),
    ...model.forwards.map((f) => field('Forwarding', `${f.url} -> -R ${f.bind}`)),
    ...model.notices.map((notice) => [[notice, 'red'] as Piece]),
    [],
    [['Connections'.padEnd(label)], [['ttl', 'opn', 'rt1', 'rt5', 'p50', 'p90'].map((c) => c.padEnd(COLUMN)).join('')]],
    [[''.padEnd(label)], [[String(model.stats.total), String(model.open), model.stats.rate1.toFixed(2), model.stats.rate5.toFixed(2), ms(model.stats.p50), ms(model.stats.p90)].map((c) => c.padEnd(COLUMN)).join('')]],
  ]
  const out = lines.map((pieces) => fit(pieces, width))
  if (model.qr !== null) {
    const qr = model.qr.replace(/\n+$/, '').split('\n')
    // The QR code is drawn only whole: a cut one would not scan.
    const qrWidth = Math.max(...qr.map((line) => line.replace(/\x1b\[[0-9;]*m/g, '').length))
    if (qrWidth <= width && out.length + 1 + qr.length <= rows) out.push('', ...qr)
    else out.push('', fit([['(window too small for the QR code)', 'dim']], width))
  }
  const room = rows - out.length - 4
  if (room > 0) {
    // tcp and tls endpoints list their connections (client address, bytes each way) under another title.
    const title = model.forwards.length > 0 && model.forwards.every((f) => !/^https?:/.test(f.url)) ? 'TCP Connections' : 'HTTP Requests'
    out.push('', fit([[title, 'bold']], width), fit([['-'.repeat(title.length)]], width), '')
    for (const request of model.requests.slice(-room).reverse()) out.push(fit(requestLine(request, width), width))
  }
  return out.slice(0, Math.max(1, rows))
}
