// Slow headers (slowloris, issue 9 item 6): every listener closes a connection whose request headers (or
// TLS ClientHello) never complete, within the one --header-timeout (tuned short here), and keeps serving
// others meanwhile. Before the fix HTTPS over HTTP/1.1 and HTTP/2 never timed out (node's HTTP/1.1 deadline
// runs only on servers that called listen(); the SNI router hands the HTTPS server its connections), plain
// HTTP cut at 60 s plus up to 30 s of node's checking interval, and the admin API at 10-40 s.
import { connect as netConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, dripper, fetchVia, h2Session, h2Status, sleep, startTestGateway, startUpstream, tlsTo, type SshClient, type TestGateway } from '../e2e/harness.js'

const NAME = 'slow.localhost'
const DRIPPERS = 24

/** The bytes of an HTTP/2 client preface, an empty SETTINGS frame, and the 9-byte head of a HEADERS frame of
 *  16 KiB (its payload then drips and never completes). */
function h2Prefix (): Buffer {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
  const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])
  const headers = Buffer.from([0x00, 0x40, 0x00, 0x01, 0x04, 0, 0, 0, 1]) // length 16384, HEADERS, END_HEADERS, stream 1
  return Buffer.concat([preface, settings, headers])
}

/** A TLS record header announcing a 512-byte handshake record (a ClientHello that never completes). */
const HELLO_START = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])

describe('slow headers are cut on every listener', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let client: SshClient
  let host: string

  beforeAll(async () => {
    gateway = await startTestGateway({ flags: { headerTimeout: '1s' } })
    upstream = await startUpstream((_req, res) => res.end('ok'))
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`slow:80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await client.urls()
    host = new URL(url!).host
  })
  afterAll(async () => {
    await client.kill('SIGKILL')
    await upstream.close()
    await gateway.stop()
  })

  const headerStart = (): Buffer => Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\n`, 'latin1')
  const headerDrip = Buffer.from('X-Drip: ' + 'a'.repeat(64), 'latin1')

  /** Opens DRIPPERS connections, checks `normal` while they are all open, then that every one was closed. */
  async function underDrip (open: () => Promise<{ closed: Promise<string>, started: Promise<void> }>, normal: () => Promise<void>): Promise<string[]> {
    const drippers = await Promise.all(Array.from({ length: DRIPPERS }, open))
    await Promise.all(drippers.map((d) => d.started))
    await normal()
    return Promise.all(drippers.map((d) => d.closed))
  }

  it('plain HTTP: dripping headers get 408 PH_3020 and are closed; others are served meanwhile', async () => {
    const answers = await underDrip(
      async () => dripper(netConnect(gateway.httpPort, '127.0.0.1'), headerStart(), headerDrip),
      async () => { expect((await fetchVia(gateway, `http://${host}/`)).body).toBe('ok') },
    )
    for (const answer of answers) {
      expect(answer).toMatch(/^HTTP\/1\.1 408 /)
      expect(answer).toContain('porthole-error-code: PH_3020')
    }
  })

  it('HTTPS over HTTP/1.1 (ALPN http/1.1): dripping headers get 408 PH_3020 and are closed', async () => {
    const answers = await underDrip(
      async () => dripper(await tlsTo(gateway, NAME, ['http/1.1']), headerStart(), headerDrip),
      async () => {
        const socket = await tlsTo(gateway, NAME, ['http/1.1'])
        const answer = await new Promise<string>((resolve) => {
          let text = ''
          socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
          socket.once('end', () => resolve(text))
          socket.write(`GET / HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`)
        })
        expect(answer).toMatch(/^HTTP\/1\.1 200 [\s\S]*ok$/)
      },
    )
    for (const answer of answers) expect(answer).toContain('PH_3020')
  })

  it('HTTPS over HTTP/2: a session prefaced but with its HEADERS never complete is closed', async () => {
    await underDrip(
      async () => dripper(await tlsTo(gateway, NAME, ['h2']), h2Prefix(), Buffer.from([0x00])),
      async () => {
        const session = h2Session(gateway, NAME)
        try {
          expect(await h2Status(session, NAME)).toBe(200)
        } finally {
          session.close()
        }
      },
    )
  })

  it('TLS listener: a ClientHello that never completes is closed', async () => {
    await underDrip(
      async () => dripper(netConnect(gateway.httpsPort, '127.0.0.1'), HELLO_START, Buffer.from([0x00])),
      async () => {
        const socket = await tlsTo(gateway, NAME, ['http/1.1'])
        socket.destroy()
      },
    )
  })

  it('an idle keep-alive connection between requests is not cut by the header deadline (HTTP, HTTPS h1, h2)', async () => {
    /** Two requests on one connection, idle past the deadline (and node's checking interval) in between. */
    const twice = async (socket: Duplex, hostName: string): Promise<string> => {
      let text = ''
      socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      socket.write(`GET / HTTP/1.1\r\nHost: ${hostName}\r\n\r\n`)
      await sleep(1600)
      socket.write(`GET / HTTP/1.1\r\nHost: ${hostName}\r\nConnection: close\r\n\r\n`)
      await closed
      return text
    }
    const session = h2Session(gateway, NAME)
    const get = (): Promise<number> => h2Status(session, NAME)
    const h2Twice = async (): Promise<void> => {
      expect(await get()).toBe(200)
      await sleep(1600)
      expect(session.closed || session.destroyed).toBe(false)
      expect(await get()).toBe(200)
    }
    try {
      const [plain, tls] = await Promise.all([
        twice(netConnect(gateway.httpPort, '127.0.0.1'), host),
        tlsTo(gateway, NAME, ['http/1.1']).then((socket) => twice(socket, NAME)),
        h2Twice(),
      ])
      expect(plain.match(/HTTP\/1\.1 200 /g)).toHaveLength(2)
      expect(tls.match(/HTTP\/1\.1 200 /g)).toHaveLength(2)
    } finally {
      session.close()
    }
  })

  it('admin API: dripping headers get 408 PH_3020 (JSON) and are closed; others are answered meanwhile', async () => {
    const answers = await underDrip(
      async () => dripper(netConnect(gateway.apiPort!, '127.0.0.1'), Buffer.from('GET /api/sessions HTTP/1.1\r\nHost: api\r\n', 'latin1'), headerDrip),
      async () => {
        const res = await request(`http://127.0.0.1:${gateway.apiPort}/api/sessions`)
        expect(res.statusCode).toBe(401)
        expect(await res.body.json()).toMatchObject({ error_code: 'PH_5005' })
      },
    )
    for (const answer of answers) {
      expect(answer).toMatch(/^HTTP\/1\.1 408 /)
      expect(answer).toContain('"error_code":"PH_3020"')
    }
  })
})
