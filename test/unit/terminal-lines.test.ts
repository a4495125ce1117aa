// The SSH terminal's request lines (src/agents/ssh/terminal.ts): those of one turn of the event loop leave in one
// write (one SSH packet), in order with everything else the terminal writes.
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { Terminal } from '../../src/agents/ssh/terminal.js'
import type { ServerChannel } from 'ssh2'

function fakeChannel (): { channel: ServerChannel, writes: string[] } {
  const writes: string[] = []
  const channel = Object.assign(new EventEmitter(), {
    writable: true,
    writableLength: 0,
    write: (data: string) => { writes.push(String(data)); return true },
    stderr: { write: (data: string) => { writes.push(`stderr:${String(data)}`); return true } },
    exit: () => {},
    end: () => {},
  })
  return { channel: channel as unknown as ServerChannel, writes }
}

const record = (path: string) => ({ method: 'GET', path, status: 200, durationMs: 3, clientIp: '127.0.0.1' })

describe('terminal request lines', () => {
  it('sends the lines of one turn in one write, after what was written before them and before what comes next', async () => {
    const { channel, writes } = fakeChannel()
    const terminal = new Terminal(channel)
    terminal.request(record('/a'), () => 'http://x.localhost')
    terminal.request(record('/b'), () => 'http://x.localhost')
    terminal.request(record('/c'), () => 'http://x.localhost')
    expect(writes).toEqual([])
    await new Promise((resolve) => setImmediate(resolve))
    expect(writes).toEqual(['GET /a 200 3ms\nGET /b 200 3ms\nGET /c 200 3ms\n'])
    terminal.request(record('/d'), () => 'http://x.localhost')
    await terminal.exit(0)
    expect(writes.at(-1)).toBe('GET /d 200 3ms\n') // flushed before the exit status
  })

  it('asks for the endpoint\'s URL only for JSON lines (the text line does not show it)', async () => {
    const { channel, writes } = fakeChannel()
    const terminal = new Terminal(channel)
    let asked = 0
    const url = (): string => { asked++; return 'http://x.localhost' }
    terminal.request(record('/text'), url)
    terminal.output = 'json'
    terminal.request(record('/json'), url)
    await new Promise((resolve) => setImmediate(resolve))
    expect(asked).toBe(1)
    const [text, json] = writes.join('').split('\n')
    expect(text).toBe('GET /text 200 3ms')
    expect(JSON.parse(json!)).toEqual({ event: 'request', url: 'http://x.localhost', method: 'GET', path: '/json', status: 200, duration_ms: 3, client_ip: '127.0.0.1' })
  })
})
