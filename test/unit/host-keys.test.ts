// Regression: ssh2 sometimes generated an ed25519 host key it could not parse back, and the first start of
// a gateway failed with "Malformed OpenSSH private key" (about 1 in 75 starts).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { describe, expect, it } from 'vitest'
import { generateParsable, loadHostKeys } from '../../src/agents/ssh/host-keys.js'

describe('host keys', () => {
  it('creates both keys with mode 0600 and reuses them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-hostkeys-'))
    try {
      const keys = loadHostKeys(dir)
      for (const key of keys) expect(ssh2.utils.parseKey(key)).not.toBeInstanceOf(Error)
      expect(statSync(join(dir, 'ssh_host_ed25519_key')).mode & 0o777).toBe(0o600)
      expect(statSync(join(dir, 'ssh_host_rsa_key')).mode & 0o777).toBe(0o600)
      expect(readFileSync(join(dir, 'ssh_host_rsa_key.pub'), 'utf8')).toMatch(/^ssh-rsa /)
      expect(loadHostKeys(dir)).toEqual(keys)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('only ever returns ed25519 keys that ssh2 can read back', () => {
    for (let i = 0; i < 500; i++) {
      const pair = generateParsable(() => ssh2.utils.generateKeyPairSync('ed25519'))
      expect(ssh2.utils.parseKey(pair.private)).not.toBeInstanceOf(Error)
    }
  })
})
