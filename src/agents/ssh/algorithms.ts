// What the SSH listener offers, in one place: a modern set that ssh-audit rates clean, plus a small legacy set
// kept by default for the routers in the field. Old Dropbear builds (2016.74-2019.78, still shipped on routers
// and other embedded devices, see SSH-CLIENTS.md) have no ed25519, no rsa-sha2, no AEAD cipher and no
// encrypt-then-MAC: they can only verify an RSA host key signed with `ssh-rsa` (SHA-1) and, besides
// curve25519, agree on `diffie-hellman-group14-sha1`, with an encrypt-and-MAC `hmac-sha2-*`/`hmac-sha1` MAC.
// SHA-1 there is weak only against chosen-prefix collisions, which a live key exchange does not give an
// attacker; modern clients never pick these (they sort after the modern ones). An operator without such devices
// turns the legacy set off with `--ssh-legacy-algorithms=false`; then ssh-audit reports no fail and no warn.
//
// ssh2 always pairs an RSA host key with `ssh-rsa` signatures (lowest priority, not removable through its
// options), so with the legacy set off the RSA host key is not offered at all: ed25519 only (OpenSSH >= 6.5,
// Dropbear >= 2020.79, PuTTY >= 0.68). The key file stays, so turning the legacy set back on keeps its
// fingerprint.
//
// Left out on purpose: ecdh-sha2-nistp* (NIST curves, rated fail by ssh-audit; every client with them also has
// curve25519), diffie-hellman-group1-sha1 and group-exchange-sha1, hmac-sha1-etm, compression (it costs CPU on
// every packet, and ssh2's zlib writer throws once a compressed connection has closed under an open channel).
// Strict key exchange (`kex-strict-s-v00@openssh.com`, the Terrapin countermeasure) is always offered: ssh2
// appends it to the kex list itself.
import ssh2 from 'ssh2'

const { utils } = ssh2

// curve25519-sha256@libssh.org first, as ssh2 orders it: Dropbear sends its first key-exchange packet on a guess
// (first_kex_packet_follows), and ssh2 1.17 stalls the handshake when that guess is right (dbclient 2022.83 hung
// with curve25519-sha256 first).
const KEX = [
  'curve25519-sha256@libssh.org',
  'curve25519-sha256',
  'diffie-hellman-group-exchange-sha256',
  'diffie-hellman-group16-sha512',
  'diffie-hellman-group18-sha512',
  'diffie-hellman-group14-sha256',
]
const LEGACY_KEX = ['diffie-hellman-group14-sha1']

/** Host-key signature algorithms; ssh2 uses those for which it has a key. */
const HOST_KEY = ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256']
const LEGACY_HOST_KEY = ['ssh-rsa']

const MAC = ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com']
/** Encrypt-and-MAC: all that Dropbear before 2020.79 has for its aes-ctr ciphers. */
const LEGACY_MAC = ['hmac-sha2-256', 'hmac-sha2-512', 'hmac-sha1']

/** The legacy set's names, for documentation and tests. */
export const LEGACY_ALGORITHMS: readonly string[] = [...LEGACY_KEX, ...LEGACY_HOST_KEY, ...LEGACY_MAC]

/** ssh2 Server `algorithms`: exact lists, modern first, the legacy set appended when on. Ciphers are ssh2's
 *  defaults (AES-GCM, chacha20-poly1305, AES-CTR: all clean), in the order it measured fastest. */
export function sshAlgorithms (legacy: boolean): Record<'kex' | 'serverHostKey' | 'hmac' | 'compress', string[]> {
  return {
    kex: legacy ? [...KEX, ...LEGACY_KEX] : [...KEX],
    serverHostKey: legacy ? [...HOST_KEY, ...LEGACY_HOST_KEY] : [...HOST_KEY],
    hmac: legacy ? [...MAC, ...LEGACY_MAC] : [...MAC],
    compress: ['none'],
  }
}

/** The host keys to offer: without the legacy set, no RSA key (ssh2 would sign with ssh-rsa for it). */
export function offeredHostKeys (keys: readonly Buffer[], legacy: boolean): Buffer[] {
  if (legacy) return [...keys]
  return keys.filter((key) => {
    const parsed = utils.parseKey(key)
    const first = Array.isArray(parsed) ? parsed[0] : parsed
    return !(first instanceof Error) && first?.type !== 'ssh-rsa'
  })
}
