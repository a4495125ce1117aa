// Fresh SSH key pairs for tests. ssh2 now and then writes an ed25519 key its own parser refuses ("Malformed
// OpenSSH private key", about 1 in 75): every test key goes through the gateway's own guard against that.
import ssh2 from 'ssh2'
import { generateParsable } from '../src/agents/ssh/host-keys.js'

export type KeyType = 'ed25519' | 'rsa' | 'ecdsa'

/** A key pair ssh2 generated and can read back; `bits` for RSA and ECDSA. */
export function freshKeyPair (type: KeyType = 'ed25519', bits?: number): { private: string, public: string } {
  return generateParsable(() => ssh2.utils.generateKeyPairSync(type as 'ed25519', (bits === undefined ? undefined : { bits }) as never))
}

/** The private half (OpenSSH text) of a fresh key pair. */
export function freshPrivateKey (type: KeyType = 'ed25519', bits?: number): string {
  return freshKeyPair(type, bits).private
}
