// Regression: `ssh gw http --request-header-add 'X-Added: yes'`, typed as the README writes it, failed with
// `PH_1002: bad value for argument "yes"`: ssh (and dbclient) join the remote command's arguments with spaces,
// so the quotes the user's shell removed are gone when the gateway reads the line. The gateway now joins a
// header-add value that ends with ':' with the words after it. Here the clients get separate argv words, as a
// shell hands them over.
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, fetchVia, SshClient, startTestGateway, startUpstream, type ClientKind, type TestGateway } from './harness.js'

function sshArgv (kind: ClientKind, gateway: TestGateway, forward: string, words: string[]): SshClient {
  const key = gateway.key('alice', kind)
  const args = kind === 'openssh'
    ? ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
        '-o', 'ExitOnForwardFailure=yes', '-T', '-i', key, '-p', String(gateway.sshPort), '-R', forward, 'tester@127.0.0.1', ...words]
    : ['-y', '-y', '-i', key, '-p', String(gateway.sshPort), '-R', forward, 'tester@127.0.0.1', ...words]
  return new SshClient(spawn(kind === 'openssh' ? 'ssh' : 'dbclient', args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: tmpdir() } }))
}

describe.each(CLIENTS)('header values with spaces through %s', (kind) => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => res.end(JSON.stringify(req.headers)))
  })
  afterAll(async () => {
    await upstream.close()
    await gateway.stop()
  })

  it("http --request-header-add 'X-Added: yes' reaches the upstream as x-added: yes; --response-header-add likewise", async () => {
    const client = sshArgv(kind, gateway, `split-${kind}:80:localhost:${upstream.port}`,
      ['http', '--request-header-add', 'X-Added: yes', '--response-header-add', 'X-Note: two words'])
    try {
      const [url] = await client.urls()
      const res = await fetchVia(gateway, `${url}/`)
      expect(res.status).toBe(200)
      expect(JSON.parse(res.body)['x-added']).toBe('yes')
      expect(res.headers['x-note']).toBe('two words')
    } finally {
      await client.kill('SIGKILL')
    }
  })
})
