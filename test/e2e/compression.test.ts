// --compression through a real tunnel: curl and Node clients get gzip or br bodies that decode to the
// original, streamed responses stay streamed, and nothing is compressed twice.
import { execFile } from 'node:child_process'
import { brotliDecompressSync, createGunzip, gunzipSync, gzipSync } from 'node:zlib'
import { promisify } from 'node:util'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const run = promisify(execFile)
const TEXT = 'porthole compresses text. '.repeat(4000)

describe('compress-response', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let client: SshClient
  let host: string
  /** /stream ends its response only when this is called: after the client has seen the first part. */
  let endStream = (): void => {}

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      if (req.url === '/gzipped') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' })
        res.end(gzipSync(TEXT))
      } else if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('first part '.repeat(50))
        endStream = () => res.end('second part')
      } else {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
        res.end(TEXT)
      }
    })
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`zip:80:localhost:${upstream.port}`], command: 'http --compression' })
    host = new URL((await client.urls())[0]!).host
  })
  afterAll(async () => {
    await client.kill()
    await upstream.close()
    await gateway.stop()
  })

  const get = async (path: string, acceptEncoding: string) => {
    const res = await request(`http://127.0.0.1:${gateway.httpPort}${path}`, { headers: { host, 'accept-encoding': acceptEncoding } })
    return { headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) }
  }

  it('gives curl --compressed a gzip body that decodes to the original', async () => {
    const { stdout } = await run('curl', ['-sS', '--compressed', '-H', `Host: ${host}`, '-H', 'Accept-Encoding: gzip', '-w', '\n%{size_download}', `http://127.0.0.1:${gateway.httpPort}/`], { maxBuffer: 1 << 24 })
    const lines = stdout.split('\n')
    expect(lines.slice(0, -1).join('\n')).toBe(TEXT)
    expect(Number(lines.at(-1))).toBeLessThan(TEXT.length / 10)
  })

  it('prefers br when offered, and decodes', async () => {
    const { headers, body } = await get('/', 'gzip, br')
    expect(headers['content-encoding']).toBe('br')
    expect(headers['content-length']).toBeUndefined()
    expect(brotliDecompressSync(body).toString()).toBe(TEXT)
  })

  it('does not compress twice, nor for clients that do not ask', async () => {
    const twice = await get('/gzipped', 'gzip')
    expect(twice.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(twice.body).toString()).toBe(TEXT)
    const plain = await get('/', 'identity')
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.body.toString()).toBe(TEXT)
  })

  it('keeps a streamed response streaming (the first part arrives before the upstream ends)', async () => {
    // The upstream holds its end until the client has decoded the first part: a gateway that waited for the whole
    // body before sending (or flushing) anything never lets this test finish.
    const res = await request(`http://127.0.0.1:${gateway.httpPort}/stream`, { headers: { host, 'accept-encoding': 'gzip' } })
    expect(res.headers['content-encoding']).toBe('gzip')
    const chunks: Buffer[] = []
    const gunzip = createGunzip()
    let decoded = ''
    gunzip.on('data', (text: Buffer) => {
      decoded += text.toString()
      if (decoded === 'first part '.repeat(50)) endStream()
    })
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer)
      gunzip.write(chunk)
    }
    expect(gunzipSync(Buffer.concat(chunks)).toString()).toBe('first part '.repeat(50) + 'second part')
  })
})
