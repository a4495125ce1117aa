// The inspector's web page: three static files from the top-level inspector-ui/ folder (no build step, no
// CDN), found relative to this module so the same path works from src/ (vitest) and from dist/ (the
// package). Only these names are served; each is read once and kept (they are small).
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const UI_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../inspector-ui')

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
}

export interface UiFile {
  readonly type: string
  readonly body: Buffer
}

export class UiFiles {
  readonly #dir: string
  readonly #cache = new Map<string, UiFile | null>()

  constructor (dir = UI_DIR) {
    this.#dir = dir
  }

  /** The file for a URL path (`/` is index.html), or null for anything else. */
  get (path: string): UiFile | null {
    const name = path === '/' || path === '/inspect/http' ? 'index.html' : path.slice(1)
    const type = TYPES[name]
    if (type === undefined) return null
    let file = this.#cache.get(name)
    if (file === undefined) {
      try {
        file = { type, body: readFileSync(join(this.#dir, name)) }
      } catch {
        file = null
      }
      this.#cache.set(name, file)
    }
    return file
  }
}
