// OpenSSH-style key fingerprints ("SHA256:base64-without-padding"), as `ssh-keygen -l` prints them.
import { createHash } from 'node:crypto'

export function fingerprint (publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`
}
