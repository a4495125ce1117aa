// What one agent session costs the gateway in memory (RSS), the figure behind max-sessions' `auto` default
// (src/config/schema.ts: 256 KiB budgeted a session). Starts `porthole serve` (dist/: npm run build first) as its own
// process, opens N SSH sessions with the ssh2 library, each with one http forward and the `http` command as OpenSSH
// sends them, then reads the gateway's VmRSS before and after.
//
//   node bench/session-cost.js [N=1000]
import { spawn } from 'node:child_process'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import ssh2 from 'ssh2'

const N = Number(process.argv[2] ?? 1000)
const tmp = mkdtempSync(join(tmpdir(), 'porthole-session-cost-'))
const bin = resolve(import.meta.dirname, '../bin/porthole.js')
const proc = spawn(process.execPath, [bin, 'serve', '--ssh-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0',
  '--api-addr', 'off', '--agent-addr', 'off', '--data-dir', join(tmp, 'data'), '--log-level', 'info', '--inspect=false',
  '--max-anonymous-sessions-per-source', '1000000', '--max-anonymous-sessions', '1000000', '--max-sessions-per-key', '1000000'], { stdio: ['ignore', 'pipe', 'inherit'] })
let out = ''
proc.stdout.setEncoding('utf8').on('data', (text) => { out += text })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1])

let sshPort
for (let i = 0; i < 300 && !sshPort; i++) {
  const line = out.split('\n').find((l) => l.includes('porthole gateway listening'))
  if (line) sshPort = Number(JSON.parse(line).ssh.split(':').at(-1))
  else await sleep(100)
}
if (!sshPort) throw new Error(`gateway did not start: ${out}`)

function login (i) {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client()
    client.on('error', reject)
    client.on('keyboard-interactive', (_n, _i, _l, prompts, finish) => finish(prompts.map(() => '')))
    client.once('ready', () => {
      // As OpenSSH sends them: the forward, then the session with its command; the forward is answered once bound.
      client.forwardIn(`s${i}`, 80, (error) => (error ? reject(error) : resolve(client)))
      client.exec('http', (error, stream) => {
        if (error) return reject(error)
        stream.resume()
      })
    })
    client.connect({ host: '127.0.0.1', port: sshPort, username: 'bench', tryKeyboard: true, readyTimeout: 60_000 })
  })
}

await sleep(1000)
const before = rssKiB()
const clients = []
for (let i = 0; i < N; i += 20) clients.push(...await Promise.all(Array.from({ length: Math.min(20, N - i) }, (_, j) => login(i + j))))
await sleep(3000)
const after = rssKiB()
console.log(JSON.stringify({ sessions: N, rssBeforeKiB: before, rssAfterKiB: after, perSessionKiB: Math.round((after - before) / N * 10) / 10 }))
for (const c of clients) c.end()
proc.kill('SIGKILL')
rmSync(tmp, { recursive: true, force: true })
