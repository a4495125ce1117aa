// Single-stream download through an SSH tunnel, sshd's plain `-R` against one or more Porthole builds side by
// side (issue 13: MB/s >= 0.9x sshd, CPU per GiB <= 1.5x). bench/run.js measures one download per round after a
// wrk run; this measures downloads only, several per round, rotating the order, and reads the CPU of every process
// in the path (gateway, ssh client, curl, nginx) so one can see which of them bounds the rate: a process whose CPU
// over the download's wall time is near 100% is saturating its core.
//
//   npm run build && node bench/download.js [--rounds=5] [--mib=1024] [--builds=DIR,DIR...] [--no-sshd] [--wrk=2s [--wrk-c=50] [--pause-ms=0]] [--warm-mib=256]
//   BENCH_NODE_ARGS='--trace-gc' BENCH_GATEWAY_STDOUT=/tmp/gw node bench/download.js ...   # gateway node flags; its stdout to /tmp/gw.N
//   BENCH_GATEWAY_ARGS='--inspect=false' node bench/download.js ...                         # more `porthole serve` flags
//
// --wrk: before each download, `wrk -t1 -c50` on /small through the same target for that long, as bench/run.js
// does (its download follows the wrk run): what 50 concurrent requests leave behind (idle tunnel streams, heap)
// then weighs on the download.
// --builds: Porthole checkouts (each with bin/porthole.js and a built dist/) to compare, default this one; a
// label is the directory's last component. Each gateway gets its own ssh client; all share one nginx.
import { chmodSync, createWriteStream, mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  benchGatewayArgs, benchNodeArgs, cleanup, freePort, keygen, killAll, median, run, sshClientArgs, startChild, startNginx, startSshd, treeCpuMs, waitListening, waitReady,
  writeSite,
} from './processes.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const ARGS = process.argv.slice(2)
const arg = (name, fallback) => ARGS.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const ROUNDS = Number(arg('rounds', '5'))
const BYTES = Number(arg('mib', '1024')) * 1024 * 1024
const BUILDS = arg('builds', ROOT).split(',').map((dir) => resolve(dir))
const SSHD = !ARGS.includes('--no-sshd')
const WRK = arg('wrk', null)
const WRK_CONNECTIONS = arg('wrk-c', '50')
const PAUSE_MS = Number(arg('pause-ms', '0'))
const WARM_MIB = Number(arg('warm-mib', '256'))
const GIB = 1024 ** 3

const sshArgs = (key, port) => [...sshClientArgs(key, port), '-o', 'LogLevel=ERROR']

async function main () {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-download-'))
  chmodSync(tmp, 0o755)
  process.on('SIGINT', () => { cleanup(tmp).then(() => process.exit(130)) })
  process.on('exit', killAll)
  const key = keygen(join(tmp, 'client'))

  const www = join(tmp, 'www')
  writeSite(www, { bigBytes: BYTES })
  const nginxPort = await freePort()
  const nginx = await startNginx(join(tmp, 'nginx'), nginxPort, [`server { listen 127.0.0.1:${nginxPort}; root ${www}; }`])

  const targets = []
  if (SSHD) {
    const { port, entry: sshd } = await startSshd(join(tmp, 'sshd'), key)
    const public_ = await freePort()
    const client = startChild('ssh (sshd)', 'ssh', [...sshArgs(key, port), '-N', '-R', `127.0.0.1:${public_}:127.0.0.1:${nginxPort}`, `${userInfo().username}@127.0.0.1`])
    targets.push({ name: 'sshd', port: public_, host: `127.0.0.1:${public_}`, processes: [sshd, client], gateway: sshd, client })
  }
  for (const [i, build] of BUILDS.entries()) {
    const ports = { ssh: await freePort(), http: await freePort(), https: await freePort() }
    mkdirSync(join(tmp, `data${i}`))
    // Each build's own node flags (its dist/cli/node-flags.js), so that builds differing only there compare too.
    const { GATEWAY_NODE_FLAGS } = await import(join(build, 'dist', 'cli', 'node-flags.js'))
    const gateway = startChild(`porthole ${build}`, process.execPath, [...GATEWAY_NODE_FLAGS, ...benchNodeArgs(), join(build, 'bin', 'porthole.js'), 'serve',
      '--data-dir', join(tmp, `data${i}`), '--ssh-addr', `127.0.0.1:${ports.ssh}`, '--http-addr', `127.0.0.1:${ports.http}`,
      '--https-addr', `127.0.0.1:${ports.https}`, '--agent-addr', 'off', '--api-addr', 'off', '--log-level', 'warn',
      ...benchGatewayArgs()], { stopSignal: 'SIGINT' })
    await waitListening(ports.ssh, gateway)
    // BENCH_GATEWAY_STDOUT=FILE: a copy of all the gateway prints (e.g. with BENCH_NODE_ARGS=--trace-gc).
    if (process.env.BENCH_GATEWAY_STDOUT) gateway.child.stdout.pipe(createWriteStream(`${process.env.BENCH_GATEWAY_STDOUT}.${i}`))
    const client = startChild(`ssh (${build})`, 'ssh', [...sshArgs(key, ports.ssh), '-N', '-R', `bench:80:127.0.0.1:${nginxPort}`, `${userInfo().username}@127.0.0.1`])
    const name = BUILDS.length > 1 ? `${basename(build)}` : 'porthole'
    targets.push({ name, port: ports.http, host: 'bench.localhost', processes: [gateway, client], gateway, client })
  }
  for (const target of targets) await waitReady(target)
  await run('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${nginxPort}/big`]) // page cache
  // One download of the first WARM_MIB through each target, not counted: a gateway's first download also pays for
  // compiling its hot paths (15-25% more CPU than later ones), which sshd never does.
  for (const target of targets) {
    await run('curl', ['-s', '-o', '/dev/null', '-r', `0-${WARM_MIB * 1024 * 1024 - 1}`, '-H', `Host: ${target.host}`, `http://127.0.0.1:${target.port}/big`])
  }

  process.stdout.write(`download ${BYTES / 2 ** 20} MiB, ${ROUNDS} rounds, order rotating${WRK ? `, each after wrk -c${WRK_CONNECTIONS} for ${WRK}${PAUSE_MS ? ` and ${PAUSE_MS} ms idle` : ''}` : ''}; cpu = % of one core over the download\n`)
  const samples = []
  for (let round = 0; round < ROUNDS; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length])
    for (const target of order) {
      if (WRK) {
        await run('wrk', ['-t1', `-c${WRK_CONNECTIONS}`, `-d${WRK}`, '-H', `Host: ${target.host}`, `http://127.0.0.1:${target.port}/small`])
        if (PAUSE_MS) await new Promise((resolve) => setTimeout(resolve, PAUSE_MS))
      }
      const before = { gateway: treeCpuMs(target.gateway.child.pid), client: treeCpuMs(target.client.child.pid), nginx: treeCpuMs(nginx.child.pid) }
      const started = performance.now()
      const out = await run('/bin/sh', ['-c', `curl -s -o /dev/null -w '%{size_download} %{http_code}' -H 'Host: ${target.host}' http://127.0.0.1:${target.port}/big; echo; times`])
      const wall = performance.now() - started
      const cpu = {
        gateway: treeCpuMs(target.gateway.child.pid) - before.gateway,
        client: treeCpuMs(target.client.child.pid) - before.client,
        nginx: treeCpuMs(nginx.child.pid) - before.nginx,
        curl: childrenTimes(out),
      }
      const [size, status] = out.split('\n')[0].split(' ').map(Number)
      if (size !== BYTES || status !== 200) throw new Error(`${target.name}: HTTP ${status}, ${size} bytes`)
      const sample = { target: target.name, round, mbps: BYTES / wall / 1000, wallMs: wall, cpu }
      samples.push(sample)
      const pct = (ms) => `${(ms / wall * 100).toFixed(0).padStart(3)}%`
      const perGiB = (ms) => (ms * GIB / BYTES).toFixed(0).padStart(5)
      process.stdout.write(`  ${String(round + 1).padStart(2)} ${target.name.padEnd(10)} ${sample.mbps.toFixed(0).padStart(4)} MB/s  ` +
        `gateway ${pct(cpu.gateway)} ${perGiB(cpu.gateway)} ms/GiB  client ${pct(cpu.client)} ${perGiB(cpu.client)}  curl ${pct(cpu.curl)}  nginx ${pct(cpu.nginx)}\n`)
    }
  }
  process.stdout.write('\nmedian (min-max)   MB/s            gateway ms/GiB     client ms/GiB\n')
  const range = (values, digits = 0) => `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`
  for (const target of targets) {
    const mine = samples.filter((s) => s.target === target.name)
    const scale = GIB / BYTES
    process.stdout.write(`  ${target.name.padEnd(16)} ${range(mine.map((s) => s.mbps)).padEnd(15)} ${range(mine.map((s) => s.cpu.gateway * scale)).padEnd(18)} ${range(mine.map((s) => s.cpu.client * scale))}\n`)
  }
  if (SSHD) {
    // Per round ratio to that round's sshd download: less sensitive to the box's load drifting between rounds.
    for (const target of targets.slice(1)) {
      const ratios = []
      for (let round = 0; round < ROUNDS; round++) {
        const base = samples.find((s) => s.target === 'sshd' && s.round === round)
        const mine = samples.find((s) => s.target === target.name && s.round === round)
        ratios.push(mine.mbps / base.mbps)
      }
      process.stdout.write(`  ${target.name} / sshd MB/s per round: median ${range(ratios, 2)}\n`)
    }
  }
  await cleanup(tmp)
}

/** curl's CPU ms from the shell's `times` (second line: children's user and system time, e.g. 0m0.120s 0m0.530s). */
function childrenTimes (out) {
  const line = out.trim().split('\n').at(-1)
  let ms = 0
  for (const match of line.matchAll(/(\d+)m([\d.]+)s/g)) ms += (Number(match[1]) * 60 + Number(match[2])) * 1000
  return ms
}

main().catch(async (error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  await cleanup()
  process.exit(1)
})
