// The client recipes of docs/deploy.md, run as written against a real gateway: the Dropbear reconnect loop brings
// its endpoint back (same name) after the gateway ends its session, and the ssh command of the systemd user unit
// holds an endpoint. Only the host, port, key and upstream port are changed to fit the test.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { eventually, fetchVia, startTestGateway, startUpstream, type TestGateway } from './harness.js'

const page = readFileSync(resolve(import.meta.dirname, '../../docs/deploy.md'), 'utf8')
const blocks = (lang: string): string[] => [...page.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!)

let cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const step of cleanup.reverse()) await step()
  cleanup = []
})

/** Runs a shell script in its own process group, killed (the loop and its client) after the test. */
function runScript (script: string, home: string): ChildProcess {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore', env: { ...process.env, HOME: home } })
  cleanup.push(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} })
  return child
}

async function gatewayAndUpstream (): Promise<{ gateway: TestGateway, upstreamPort: number }> {
  const gateway = await startTestGateway()
  cleanup.push(() => gateway.stop())
  const upstream = await startUpstream((_, res) => res.end('from the device'))
  cleanup.push(() => upstream.close())
  return { gateway, upstreamPort: upstream.port }
}

describe('docs/deploy.md client recipes', () => {
  it('the Dropbear loop reconnects and gets its name back after its session is killed', async () => {
    const { gateway, upstreamPort } = await gatewayAndUpstream()
    const loop = blocks('sh').find((b) => b.includes('while :; do') && b.includes('dbclient'))!
    expect(loop).toBeDefined()
    const script = loop
      .replace('-i /etc/dropbear/tunnel_key', `-i ${gateway.key('alice', 'dropbear')}`)
      .replace('router1:80:localhost:80', `router1:80:localhost:${upstreamPort}`)
      .replace(' tunnel.example.com', ` 127.0.0.1/${gateway.sshPort}`)
      .replace('delay=5\n', 'delay=1\n')
    expect(script).toContain(`127.0.0.1/${gateway.sshPort}`)
    runScript(script, gateway.tmp)

    const served = async (): Promise<boolean> => (await fetchVia(gateway, 'http://router1.localhost/')).body === 'from the device'
    await eventually(served, 30_000)
    const [first] = gateway.sessions.sessions()
    expect(first).toBeDefined()
    expect(await gateway.sessions.kill(first!.id)).toBe(true)
    await eventually(() => gateway.sessions.sessions().some((s) => s.id !== first!.id) && served(), 30_000)
  })

  it('the systemd user unit\'s ssh command holds an endpoint', async () => {
    const { gateway, upstreamPort } = await gatewayAndUpstream()
    const exec = /^ExecStart=(.*)$/m.exec(blocks('ini')[0]!)![1]!
    expect(exec).toMatch(/^\/usr\/bin\/ssh -N .* -R myapp:80:localhost:3000 tunnel\.example\.com$/)
    const command = exec
      .replace('/usr/bin/ssh ', `/usr/bin/ssh -i ${gateway.key('alice', 'openssh')} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p ${gateway.sshPort} `)
      .replace('localhost:3000', `localhost:${upstreamPort}`)
      .replace(/ tunnel\.example\.com$/, ' 127.0.0.1')
    runScript(`exec ${command}`, gateway.tmp)
    await eventually(async () => (await fetchVia(gateway, 'http://myapp.localhost/')).body === 'from the device', 30_000)
  })
})
