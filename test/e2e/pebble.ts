// TEST ONLY. Runs Debian's `pebble` (Let's Encrypt's ACME test server) on loopback for one test file: its
// own HTTPS certificate made with openssl at test time, HTTP-01 validation pointed at the gateway's HTTP
// port, and names resolved by the DNS stub (every name -> 127.0.0.1).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { connect } from 'node:net'
import { freePort } from './harness.js'
import { join } from 'node:path'
import { startDnsStub, type DnsStub } from './dns-stub.js'
import { sleep } from './harness.js'

export interface Pebble {
  readonly dns: DnsStub
  /** The root CA that signs pebble's certificates (it makes a new one at each start). */
  root (): Promise<string>
  output (): string
  stop (): Promise<void>
}

export interface PebbleSetup {
  readonly dir: string
  readonly ports: { readonly acme: number, readonly management: number, readonly tls: number }
  /** The ACME directory URL. */
  readonly directoryUrl: string
  /** Pebble's own HTTPS certificate (self-signed): what `--acme-ca-file` trusts. */
  readonly tlsCaFile: string
  readonly tlsKeyFile: string
}

/** Ports and pebble's own HTTPS certificate, made before the gateway starts (it is told the URL at start). */
export async function preparePebble (dir: string): Promise<PebbleSetup> {
  const ports = { acme: await freePort(), management: await freePort(), tls: await freePort() }
  const tlsCaFile = join(dir, 'pebble-cert.pem')
  const tlsKeyFile = join(dir, 'pebble-key.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=pebble test',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', tlsKeyFile, '-out', tlsCaFile,
  ], { stdio: 'ignore' })
  return { dir, ports, directoryUrl: `https://127.0.0.1:${ports.acme}/dir`, tlsCaFile, tlsKeyFile }
}

/** Starts pebble validating HTTP-01 on `httpPort` (the gateway's HTTP listener). */
export async function startPebble (setup: PebbleSetup, httpPort: number): Promise<Pebble> {
  const { dir, ports } = setup
  const configFile = join(dir, 'pebble-config.json')
  writeFileSync(configFile, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${ports.acme}`,
      managementListenAddress: `127.0.0.1:${ports.management}`,
      certificate: setup.tlsCaFile,
      privateKey: setup.tlsKeyFile,
      httpPort,
      tlsPort: ports.tls,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }))
  const dns = await startDnsStub()
  const proc: ChildProcess = spawn('pebble', ['-config', configFile, '-dnsserver', `127.0.0.1:${dns.port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Validate at once, for real (no always-valid shortcut), and never reject a nonce on purpose.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_VA_ALWAYS_VALID: '0', PEBBLE_WFE_NONCEREJECT: '0' },
  })
  let output = ''
  proc.stdout!.setEncoding('utf8').on('data', (text: string) => { output += text })
  proc.stderr!.setEncoding('utf8').on('data', (text: string) => { output += text })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const deadline = Date.now() + 10_000
  while (!(await listening(ports.acme)) || !(await listening(ports.management))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      await dns.close()
      throw new Error(`pebble did not start (exit ${proc.exitCode}):\n${output}`)
    }
    await sleep(50)
  }
  const tlsCa = readFileSync(setup.tlsCaFile, 'utf8')
  let stopped: Promise<void> | undefined
  return {
    dns,
    root: () => get(`https://127.0.0.1:${ports.management}/roots/0`, tlsCa),
    output: () => output,
    stop () {
      stopped ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
        await exited
        await dns.close()
      })()
      return stopped
    },
  }
}

function listening (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
    socket.on('error', () => resolve(false))
  })
}

function get (url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))))
    }).on('error', reject).end()
  })
}
