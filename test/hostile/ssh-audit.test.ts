// ssh-audit (Debian's package; .ci/run installs it, so this file requires it) against the real SSH listener:
// strict key exchange (kex-strict-s-v00@openssh.com, the Terrapin countermeasure) is always offered; by default
// the only algorithms it rates fail or warn are the documented legacy set for old Dropbear (src/agents/ssh/
// algorithms.ts); with --ssh-legacy-algorithms=false nothing is rated fail or warn, and modern clients still
// connect while a client that only speaks ssh-rsa + diffie-hellman-group14-sha1 is refused.
import { execFile } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LEGACY_ALGORITHMS } from '../../src/agents/ssh/algorithms.js'
import { connect, startTestGateway, type TestGateway } from '../e2e/harness.js'

interface Finding { category: string, algorithm: string, level: 'fail' | 'warn', note: string }
interface Audit { offered: { kex: string[], key: string[], mac: string[] }, findings: Finding[] }

function run (args: string[]): Promise<string> {
  // ssh-audit's exit status is non-zero whenever it found a warning: the text is what we judge.
  return new Promise((resolve, reject) => execFile('ssh-audit', args, { timeout: 60_000 }, (error, stdout) => {
    if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error('ssh-audit is not installed (apt-get install ssh-audit; .ci/run does)'))
    else resolve(stdout)
  }))
}

/** The offered lists (-j) and every fail/warn line (-l warn), each attributed to its algorithm. */
async function audit (port: number): Promise<Audit> {
  const json = JSON.parse(await run(['-j', '-p', String(port), '127.0.0.1'])) as { kex: { algorithm: string }[], key: { algorithm: string }[], mac: string[] }
  const text = await run(['-n', '-l', 'warn', '-p', String(port), '127.0.0.1'])
  const findings: Finding[] = []
  let current: { category: string, algorithm: string } | null = null
  for (const line of text.split('\n')) {
    const head = /^\((\w+)\) (\S+).*?(?:-- \[(fail|warn)\] (.*))?$/.exec(line)
    if (head) {
      current = { category: head[1]!, algorithm: head[2]! }
      if (head[3] && !['rec', 'fin', 'nfo'].includes(current.category)) findings.push({ ...current, level: head[3] as 'fail' | 'warn', note: head[4]!.trim() })
      continue
    }
    const more = /^\s+`- \[(fail|warn)\] (.*)$/.exec(line)
    if (more && current && !['rec', 'fin', 'nfo'].includes(current.category)) findings.push({ ...current, level: more[1] as 'fail' | 'warn', note: more[2]!.trim() })
  }
  return { offered: { kex: json.kex.map((k) => k.algorithm), key: json.key.map((k) => k.algorithm), mac: json.mac }, findings }
}

/** ssh-audit before 3.1 does not know the strict-kex marker and warns "unknown algorithm" about it. */
const unknownStrictKex = (f: Finding): boolean => f.algorithm === 'kex-strict-s-v00@openssh.com' && f.level === 'warn' && /unknown algorithm/.test(f.note)

/** An OpenSSH client that offers only what Dropbear 2016.74-2019.78 has: ssh-rsa, group14-sha1, aes-ctr, hmac-sha2-256. */
const OLD_DROPBEAR_LIKE = ['-o', 'HostKeyAlgorithms=ssh-rsa', '-o', 'KexAlgorithms=diffie-hellman-group14-sha1', '-o', 'Ciphers=aes128-ctr', '-o', 'MACs=hmac-sha2-256']

describe('ssh-audit with the legacy set on (the default)', () => {
  let gateway: TestGateway
  beforeAll(async () => { gateway = await startTestGateway() })
  afterAll(async () => { await gateway.stop() })

  it('offers strict key exchange and nothing rated fail or warn outside the documented legacy set', async () => {
    const { offered, findings } = await audit(gateway.sshPort)
    expect(offered.kex).toContain('kex-strict-s-v00@openssh.com')
    expect(offered.kex).toContain('diffie-hellman-group14-sha1')
    expect(offered.key).toContain('ssh-rsa')
    const outside = findings.filter((f) => !unknownStrictKex(f) && !LEGACY_ALGORITHMS.includes(f.algorithm))
    expect(outside).toEqual([])
    // Fail only for the SHA-1 pair's host-key half; everything else in the legacy set is at most a warning.
    expect(findings.filter((f) => f.level === 'fail').map((f) => f.algorithm)).toEqual(['ssh-rsa'])
  })

  it('serves a client restricted to ssh-rsa + diffie-hellman-group14-sha1 (old Dropbear)', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: ['80:localhost:1'], command: 'http', extra: OLD_DROPBEAR_LIKE })
    try {
      await client.urls()
    } finally {
      await client.kill()
    }
  })
})

describe('ssh-audit with --ssh-legacy-algorithms=false', () => {
  let gateway: TestGateway
  beforeAll(async () => { gateway = await startTestGateway({ flags: { sshLegacyAlgorithms: false } }) })
  afterAll(async () => { await gateway.stop() })

  it('offers strict key exchange, neither ssh-rsa nor group14-sha1, and nothing rated fail or warn', async () => {
    const { offered, findings } = await audit(gateway.sshPort)
    expect(offered.kex).toContain('kex-strict-s-v00@openssh.com')
    for (const name of LEGACY_ALGORITHMS) expect([...offered.kex, ...offered.key, ...offered.mac]).not.toContain(name)
    expect(findings.filter((f) => !unknownStrictKex(f))).toEqual([])
  })

  it.each(['openssh', 'dropbear'] as const)('still serves a modern %s client', async (kind) => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: ['80:localhost:1'], command: 'http' })
    try {
      await client.urls()
    } finally {
      await client.kill()
    }
  })

  it('refuses a client restricted to ssh-rsa + diffie-hellman-group14-sha1', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: ['80:localhost:1'], command: 'http', extra: ['-o', 'LogLevel=INFO', ...OLD_DROPBEAR_LIKE] })
    expect(await client.exited).not.toBe(0)
    expect(client.output).toMatch(/no matching (key exchange method|host key type) found/)
    expect(client.output).not.toMatch(/Forwarding/)
  })
})
