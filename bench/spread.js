// What spreading the same keep-alive requests over many SSH connections costs a relay per request, sshd's plain
// `-R` and Porthole side by side (issue 13, "the same load spread over 1,000 endpoints"). Each relay gets N stock
// OpenSSH clients, each its own session with one forward (sshd: a port each; Porthole: a name each), all to one
// nginx. The same wrk load, `-tN -cN` (one connection per thread; --connections=C for -cC), either sends every thread through the first
// forward ("one") or thread i through forward i ("spread"). The relay's CPU per request is read from /proc (sshd:
// its per-connection processes; Porthole: the gateway), and the table gives spread / one for each relay and
// Porthole / sshd for each load: if sshd's spread / one is far above 1 too, the cost is the spreading itself
// (a read and a write per request on each SSH connection instead of many requests per read and write).
// A third relay, "nginx+sshd", puts an nginx reverse proxy (keep-alive upstreams, on the relays' core) in front of
// each sshd forward: an HTTP-aware reference made of standard parts, whose CPU is sshd's and that nginx's together.
//
//   npm run build && node bench/spread.js [--sessions=32] [--connections=SESSIONS] [--rounds=3] [--duration=5s]
//   node bench/spread.js --sessions=1 --connections=50     # the load of `npm run bench` (wrk -t1 -c50)
//   node bench/spread.js --sessions=1 --connections=50 --close   # the same, a new connection per request
//   node bench/spread.js --sessions=1 --connections=50 --usual-h1 # and a gateway with --fast-h1=false beside it
//
// On a box with 2+ cores the relays run under `taskset -c 0`, and nginx, the ssh clients and wrk under
// `taskset -c 1`, so the load and the agents stay off the relay's core.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GATEWAY_NODE_FLAGS } from '../dist/cli/node-flags.js'
import {
  PINNED, benchGatewayArgs, benchNodeArgs, cleanup, freePort, keygen, killAll, median, onCore, pinSelf, processCpuMs, run, sleep, sshClientArgs, startChild, startNginx, startSshd, treeCpuMs,
  waitListening, waitReady, writeSite,
} from './processes.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const ARGS = process.argv.slice(2)
const arg = (name, fallback) => ARGS.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const SESSIONS = Number(arg('sessions', '32'))
/** wrk's connections, spread evenly over its SESSIONS threads. */
const CONNECTIONS = Number(arg('connections', String(SESSIONS)))
const ROUNDS = Number(arg('rounds', '3'))
const DURATION = arg('duration', '5s')
// --close: every request on a new connection (Connection: close), so each also costs a TCP connection and, where
// the relay keeps a channel per connection (sshd, Porthole's tcp endpoints), an SSH channel.
const CLOSE = ARGS.includes('--close')
// Porthole's tcp endpoints take ports from here (one per session); --tcp-base=PORT to move them.
const TCP_BASE = Number(arg('tcp-base', '24000'))
// --usual-h1: a second gateway with --fast-h1=false (every request through node's HTTP server and undici) as one
// more relay, beside the default one (plain HTTP/1.1 on the fast path, src/edge/fast-h1.ts).
const USUAL_H1 = ARGS.includes('--usual-h1')

/** A wrk script giving thread i (0-based, in setup order) the address and Host of forward i, or all of them forward 0. */
function wrkScript (file, forwards, spread) {
  const list = forwards.map(({ port, host }) => `{ port = "${port}", host = "${host}" }`).join(', ')
  writeFileSync(file, `local forwards = { ${list} }
local spread = ${spread}
local n = 0
function setup (thread)
  local f = forwards[(spread and n or 0) + 1]
  n = n + 1
  thread.addr = wrk.lookup("127.0.0.1", f.port)[1]
  thread:set("host", f.host)
end
function init (args)
  req = wrk.format("GET", "/small", ${CLOSE ? '{ Host = host, Connection = "close" }' : '{ Host = host }'})
end
function request ()
  return req
end
`)
  return file
}

/** Requests wrk completed. */
function requestsOf (out) {
  const match = /(\d+) requests in/.exec(out)
  if (!match) throw new Error(`no request count in wrk's output:\n${out}`)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  if (non2xx) throw new Error(`wrk got ${non2xx[1]} non-2xx responses:\n${out}`)
  return Number(match[1])
}

async function main () {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-spread-'))
  chmodSync(tmp, 0o755)
  process.on('SIGINT', () => { cleanup(tmp).then(() => process.exit(130)) })
  process.on('exit', killAll)
  pinSelf(1) // nginx, the ssh clients and wrk inherit core 1; the relays are started on core 0
  const key = keygen(join(tmp, 'client'))
  const ssh = (port, forward) => startChild(`ssh -R ${forward}`, 'ssh', [...sshClientArgs(key, port), '-o', 'LogLevel=ERROR', '-N', '-R', forward, `${userInfo().username}@127.0.0.1`])

  writeSite(join(tmp, 'www'))
  const nginxPort = await freePort()
  await startNginx(join(tmp, 'nginx'), nginxPort, [`server { listen 127.0.0.1:${nginxPort}; root ${tmp}/www; default_type text/plain; }`])

  // sshd: a port per session.
  const { port: sshdPort, entry: sshd } = await startSshd(join(tmp, 'sshd'), key, { core: 0, config: ['MaxStartups 1000'] })
  const sshdForwards = []
  for (let i = 0; i < SESSIONS; i++) {
    const port = await freePort()
    const client = ssh(sshdPort, `127.0.0.1:${port}:127.0.0.1:${nginxPort}`)
    sshdForwards.push({ port, host: `127.0.0.1:${port}`, processes: [sshd, client] })
  }

  // nginx -> sshd: an HTTP-aware reference made of standard parts, what one might run instead of an HTTP-aware
  // gateway: an nginx reverse proxy (keep-alive upstreams) on core 0 in front of each of sshd's forwards.
  const frontForwards = []
  const frontBlocks = []
  for (const [i, forward] of sshdForwards.entries()) {
    const port = await freePort()
    frontBlocks.push(`upstream f${i} { server 127.0.0.1:${forward.port}; keepalive 64; keepalive_requests 1000000; }`,
      `server { listen 127.0.0.1:${port}; location / { proxy_pass http://f${i}; proxy_http_version 1.1; proxy_set_header Connection ""; } }`)
    frontForwards.push({ port, host: `127.0.0.1:${port}`, processes: forward.processes })
  }
  const frontNginx = await startNginx(join(tmp, 'front'), frontForwards[0].port, frontBlocks, { name: 'nginx front', core: 0 })

  // Porthole: a name per session, one HTTP port. With --usual-h1, a second gateway runs without the fast path.
  const startGateway = async (name, args) => {
    const ports = { ssh: await freePort(), http: await freePort(), https: await freePort() }
    const dataDir = join(tmp, name.replaceAll(' ', '-'))
    mkdirSync(dataDir)
    const gateway = startChild(name, ...onCore(0, process.execPath, [...GATEWAY_NODE_FLAGS, ...benchNodeArgs(), join(ROOT, 'bin', 'porthole.js'), 'serve',
      '--data-dir', dataDir, '--ssh-addr', `127.0.0.1:${ports.ssh}`, '--http-addr', `127.0.0.1:${ports.http}`,
      '--https-addr', `127.0.0.1:${ports.https}`, '--agent-addr', 'off', '--api-addr', 'off', '--log-level', 'warn',
      // every session comes from 127.0.0.1 with one key the gateway does not know (an anonymous owner)
      '--max-anonymous-sessions-per-source', '100000', '--per-source-max-startups', '100000', ...args, ...benchGatewayArgs()]), { stopSignal: 'SIGINT' })
    await waitListening(ports.ssh, gateway)
    const forwards = []
    for (let i = 0; i < SESSIONS; i++) {
      const client = ssh(ports.ssh, `s${i}:80:127.0.0.1:${nginxPort}`)
      forwards.push({ port: ports.http, host: `s${i}.localhost`, processes: [gateway, client] })
    }
    return { ports, gateway, forwards }
  }
  const { ports, gateway, forwards: portholeForwards } = await startGateway('porthole', ['--tcp-ports', `${TCP_BASE}-${TCP_BASE + SESSIONS - 1}`])
  const usual = USUAL_H1 ? await startGateway('porthole usual-h1', ['--fast-h1=false', '--tcp-ports', `${TCP_BASE + SESSIONS}-${TCP_BASE + 2 * SESSIONS - 1}`]) : null
  // Porthole's tcp endpoints: the same bytes relayed without parsing HTTP, a port each (what a relay that does not
  // parse costs in Porthole: the bound for option (a) of issue 13's per-request question).
  const tcpForwards = []
  for (let i = 0; i < SESSIONS; i++) {
    const port = TCP_BASE + i
    const client = ssh(ports.ssh, `${port}:127.0.0.1:${nginxPort}`)
    tcpForwards.push({ port, host: `127.0.0.1:${port}`, processes: [gateway, client] })
  }
  for (const forward of [...sshdForwards, ...frontForwards, ...portholeForwards, ...tcpForwards, ...(usual?.forwards ?? [])]) await waitReady({ name: forward.host, ...forward })

  const relays = [
    { name: 'sshd', forwards: sshdForwards, cpu: () => treeCpuMs(sshd.child.pid, { withRoot: false }) },
    { name: 'nginx+sshd', forwards: frontForwards, cpu: () => treeCpuMs(sshd.child.pid, { withRoot: false }) + treeCpuMs(frontNginx.child.pid) },
    { name: 'porthole', forwards: portholeForwards, cpu: () => processCpuMs(gateway.child.pid) },
    { name: 'porthole tcp', forwards: tcpForwards, cpu: () => processCpuMs(gateway.child.pid) },
    ...(usual === null ? [] : [{ name: 'porthole usual-h1', forwards: usual.forwards, cpu: () => processCpuMs(usual.gateway.child.pid) }]),
  ]
  const loads = ['one', 'spread']
  const wrk = (relay, load, duration) => run('wrk', [`-t${SESSIONS}`, `-c${CONNECTIONS}`, `-d${duration}`,
    '-s', wrkScript(join(tmp, `${relay.name}-${load}.lua`), relay.forwards, load === 'spread'), `http://127.0.0.1:${relay.forwards[0].port}/`])
  for (const relay of relays) for (const load of loads) await wrk(relay, load, '2s') // warm-up, uncounted

  process.stdout.write(`spread: ${SESSIONS} ssh sessions per relay, one forward each; wrk -t${SESSIONS} -c${CONNECTIONS} -d${DURATION} on /small (100 bytes), ` +
    `all on forward 0 ("one") or thread i on forward i ("spread"); ${ROUNDS} rounds, order alternating${PINNED ? '; relays on core 0, the rest on core 1' : ''}\n`)
  const samples = []
  for (let round = 1; round <= ROUNDS; round++) {
    const order = relays.flatMap((relay) => loads.map((load) => ({ relay, load })))
    if (round % 2 === 0) order.reverse()
    for (const { relay, load } of order) {
      await sleep(500)
      const before = relay.cpu()
      const requests = requestsOf(await wrk(relay, load, DURATION))
      const cpuUs = (relay.cpu() - before) * 1000 / requests
      samples.push({ round, relay: relay.name, load, requests, cpuUsPerRequest: cpuUs })
      process.stdout.write(`  round ${round} ${relay.name.padEnd(16)} ${load.padEnd(6)} ${requests} requests, ${cpuUs.toFixed(1)} µs relay CPU per request\n`)
    }
  }
  const cell = (relay, load) => median(samples.filter((s) => s.relay === relay && s.load === load).map((s) => s.cpuUsPerRequest))
  process.stdout.write('\n| relay CPU µs per request | one | spread | spread / one |\n|---|---|---|---|\n')
  for (const { name } of relays) {
    process.stdout.write(`| ${name} | ${cell(name, 'one').toFixed(1)} | ${cell(name, 'spread').toFixed(1)} | ${(cell(name, 'spread') / cell(name, 'one')).toFixed(2)} |\n`)
  }
  const pairs = [['porthole', 'sshd'], ['porthole', 'nginx+sshd'], ['porthole tcp', 'sshd'], ...(usual === null ? [] : [['porthole usual-h1', 'sshd'], ['porthole', 'porthole usual-h1']])]
  for (const [ours, reference] of pairs) {
    process.stdout.write(`| ${ours} / ${reference} | ${(cell(ours, 'one') / cell(reference, 'one')).toFixed(2)} | ${(cell(ours, 'spread') / cell(reference, 'spread')).toFixed(2)} | |\n`)
  }
  const file = join(ROOT, 'bench', 'results', `spread-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ sessions: SESSIONS, duration: DURATION, rounds: ROUNDS, pinned: PINNED, samples }, null, 2))
  process.stdout.write(`raw figures: ${file}\n`)
  await cleanup(tmp)
}

main().catch(async (error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  await cleanup()
  process.exit(1)
})
