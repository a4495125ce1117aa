// pino JSON logs on stdout; pretty-ish single lines when stdout is a terminal.
import { pino, type Logger } from 'pino'

export function createLogger (level: string, destination: NodeJS.WritableStream = process.stdout): Logger {
  if (level === 'silent') return pino({ level: 'silent' })
  const tty = destination === process.stdout && process.stdout.isTTY === true
  if (!tty) return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination as never)
  // A dependency-free readable form for people watching a terminal.
  return pino({
    level,
    base: undefined,
    timestamp: false,
    formatters: { level: (label) => ({ level: label }) },
  }, {
    write (line: string) {
      const { level: lvl, msg, ...rest } = JSON.parse(line) as Record<string, unknown>
      const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${String(lvl).toUpperCase().padEnd(5)} ${String(msg ?? '')}${extra ? `  ${extra}` : ''}\n`)
    },
  })
}
