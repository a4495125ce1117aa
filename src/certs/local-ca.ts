// The gateway's own certificate authority, for HTTPS on names no public CA will sign (`*.localhost`, LAN
// names). Created on first start in the data dir and reused: `ca.pem` is what users trust
// (`curl --cacert keys/ca.pem`), `ca-key.pem` never leaves the data dir. Leaf certificates all share one key
// (`leaf-key.pem`), so issuing one is a single signature and fast enough to do inside a TLS handshake.
//
// forge builds and encodes the certificates; node:crypto makes the keys and the signatures (forge's
// pure-JS RSA signs in ~30-80 ms, OpenSSL in ~1-2 ms).
import { createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto'
import { hostname } from 'node:os'
import { basename, join, resolve } from 'node:path'
import forge from 'node-forge'
import { assertCertHost } from './cert-host.js'
import { createOnce, ensureDataDir, loadOrCreateRsaKey, readIfExists } from './key-files.js'

const { pki, asn1 } = forge
// Present in forge since 0.x, missing from @types/node-forge.
const getTBSCertificate = (pki as unknown as { getTBSCertificate: (cert: forge.pki.Certificate) => forge.asn1.Asn1 }).getTBSCertificate

const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
// 3072 bits: the CA lives ten years, past the point (2030) where 2048-bit keys are expected to retire.
const CA_KEY_BITS = 3072
const CA_YEARS = 10
const LEAF_KEY_BITS = 2048
const LEAF_DAYS = 90
// Clients with a slightly slow clock must not see a certificate from the future.
const BACKDATE_MS = HOUR_MS
// RFC 5280's upper bound for a commonName; longer hosts go in the SAN only.
const MAX_CN_LENGTH = 64

export const CA_CERT_FILE = 'ca.pem'
export const CA_KEY_FILE = 'ca-key.pem'
export const LEAF_KEY_FILE = 'leaf-key.pem'

export interface IssuedCert {
  readonly certPem: string
  /** The shared leaf key (PKCS#8 PEM). */
  readonly keyPem: string
  readonly notAfter: Date
  /** Hex, as in the certificate. */
  readonly serialNumber: string
}

export class LocalCa {
  readonly certPem: string
  readonly notAfter: Date
  readonly #caKey: KeyObject
  readonly #caSubject: forge.pki.CertificateField[]
  readonly #caKeyId: string // binary string, forge's byte form
  readonly #leafKeyPem: string
  readonly #leafPublicKey: forge.pki.PublicKey

  /** Loads the CA and leaf key from `dataDir`, creating the directory (0700) and whatever is missing. */
  static loadOrCreate (dataDir: string): LocalCa {
    ensureDataDir(dataDir)
    const certPath = join(dataDir, CA_CERT_FILE)
    const keyPath = join(dataDir, CA_KEY_FILE)
    if (readIfExists(certPath) !== null && readIfExists(keyPath) === null) {
      // Never replace a CA users may already trust without being told.
      throw new Error(`${certPath} exists but its key ${keyPath} is missing; restore the key, or delete ${certPath} to create a new CA (clients must then trust the new ca.pem)`)
    }
    const caKeyPem = loadOrCreateRsaKey(keyPath, CA_KEY_BITS)
    const caKey = createPrivateKey(caKeyPem)
    // A crash between writing the key and the certificate leaves only the key: the certificate is made from it.
    const certPem = readIfExists(certPath) ?? createOnce(certPath, createCaCert(caKey, caCommonName(dataDir)), 0o644)
    if (!samePublicKey(createPublicKey(certPem), caKey)) {
      throw new Error(`${certPath} and ${keyPath} do not belong together; restore the matching pair, or delete both to create a new CA`)
    }
    const leafKeyPem = loadOrCreateRsaKey(join(dataDir, LEAF_KEY_FILE), LEAF_KEY_BITS)
    return new LocalCa(certPem, caKey, leafKeyPem)
  }

  private constructor (certPem: string, caKey: KeyObject, leafKeyPem: string) {
    const cert = pki.certificateFromPem(certPem)
    this.certPem = certPem
    this.notAfter = cert.validity.notAfter
    this.#caKey = caKey
    this.#caSubject = cert.subject.attributes
    const ski = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | null
    this.#caKeyId = ski?.subjectKeyIdentifier ? forge.util.hexToBytes(ski.subjectKeyIdentifier) : cert.generateSubjectKeyIdentifier().getBytes()
    this.#leafKeyPem = leafKeyPem
    this.#leafPublicKey = forgePublicKey(createPrivateKey(leafKeyPem))
  }

  /**
   * A certificate for `host` (exact, or a wildcard like `*.team.localhost`), valid from an hour before `now`
   * for 90 days (never past the CA's own end). Throws a plain Error for a malformed host.
   */
  issue (host: string, now: number = Date.now()): IssuedCert {
    assertCertHost(host)
    const cert = pki.createCertificate()
    cert.publicKey = this.#leafPublicKey
    cert.serialNumber = randomSerial()
    cert.validity.notBefore = wholeSeconds(now - BACKDATE_MS)
    cert.validity.notAfter = wholeSeconds(Math.min(now + LEAF_DAYS * DAY_MS, this.notAfter.getTime()))
    const withCn = host.length <= MAX_CN_LENGTH
    cert.setSubject(withCn ? [{ name: 'commonName', value: host }] : [])
    cert.setIssuer(this.#caSubject)
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      // RFC 5280: with an empty subject the SAN must be critical.
      { name: 'subjectAltName', altNames: [{ type: 2, value: host }], critical: !withCn },
      { name: 'subjectKeyIdentifier' },
      // forge's `keyIdentifier: true` would take the leaf's own key id; the authority's is the CA's.
      { name: 'authorityKeyIdentifier', keyIdentifier: this.#caKeyId },
    ])
    signCert(cert, this.#caKey)
    return { certPem: pki.certificateToPem(cert), keyPem: this.#leafKeyPem, notAfter: cert.validity.notAfter, serialNumber: cert.serialNumber }
  }
}

function caCommonName (dataDir: string): string {
  const where = hostname() || basename(resolve(dataDir))
  return `Porthole Local CA (${where})`.slice(0, MAX_CN_LENGTH)
}

function createCaCert (caKey: KeyObject, commonName: string): string {
  const now = Date.now()
  const cert = pki.createCertificate()
  cert.publicKey = forgePublicKey(caKey)
  cert.serialNumber = randomSerial()
  cert.validity.notBefore = wholeSeconds(now - BACKDATE_MS)
  cert.validity.notAfter = wholeSeconds(now)
  cert.validity.notAfter.setUTCFullYear(cert.validity.notAfter.getUTCFullYear() + CA_YEARS)
  const subject = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'Porthole' }]
  cert.setSubject(subject)
  cert.setIssuer(subject)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ])
  signCert(cert, caKey)
  return pki.certificateToPem(cert)
}

/** cert.sign() without forge's pure-JS RSA: forge encodes the to-be-signed part, OpenSSL signs it. */
function signCert (cert: forge.pki.Certificate, key: KeyObject): void {
  cert.signatureOid = cert.siginfo.algorithmOid = pki.oids['sha256WithRSAEncryption']!
  const tbs = getTBSCertificate(cert)
  ;(cert as { tbsCertificate?: forge.asn1.Asn1 }).tbsCertificate = tbs // certificateToPem uses the cached form
  const der = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary')
  cert.signature = sign('sha256', der, key).toString('binary')
}

/** Certificates carry whole seconds; rounding here keeps IssuedCert.notAfter equal to what clients see. */
function wholeSeconds (ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000)
}

/** 16 random bytes as a positive DER INTEGER with no leading zero octet (RFC 5280: at most 20 octets). */
function randomSerial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) || 0x01
  return bytes.toString('hex')
}

function forgePublicKey (privateKey: KeyObject): forge.pki.PublicKey {
  return pki.publicKeyFromPem(createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string)
}

function samePublicKey (a: KeyObject, b: KeyObject): boolean {
  const spki = (key: KeyObject) => (key.type === 'public' ? key : createPublicKey(key)).export({ type: 'spki', format: 'der' })
  return spki(a).equals(spki(b))
}
