// `--qr`: the main URL as a QR code made of block characters, drawn by the qrcode library (the small terminal
// renderer: two modules per character cell), so a phone on the desk can open the tunnel. Also the version the
// terminal views show, read once from package.json.
import { readFileSync } from 'node:fs'
import QRCode from 'qrcode'

/** The QR code of `url` as the library draws it for a terminal (lines end with \n), or null if it cannot. */
export function qrText (url: string): Promise<string | null> {
  return new Promise((resolve) => {
    try {
      QRCode.toString(url, { type: 'terminal', small: true }, (error, text) => resolve(error ? null : text))
    } catch {
      resolve(null)
    }
  })
}

let version: string | undefined

/** Porthole's version (package.json: three levels up from src/agents/ssh and from dist/agents/ssh). */
export function portholeVersion (): string {
  if (version === undefined) {
    try {
      version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version
    } catch {
      version = 'unknown'
    }
  }
  return version
}
