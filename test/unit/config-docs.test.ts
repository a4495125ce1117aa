// docs/configuration.md is generated from the config schema (scripts/gen-config-docs.js): this regenerates it in
// memory and fails when the committed page is stale, and checks the page's example is a config that loads.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CONFIG_KEYS, kebab, loadConfig } from '../../src/config/load.js'
import { configSchema } from '../../src/config/schema.js'
import { renderConfigDocs } from '../../scripts/gen-config-docs.js'

const root = resolve(import.meta.dirname, '../..')
const source = readFileSync(resolve(root, 'src/config/schema.ts'), 'utf8')
const page = readFileSync(resolve(root, 'docs/configuration.md'), 'utf8')

describe('docs/configuration.md', () => {
  it('is what the generator makes from the schema now (else: npm run build && node scripts/gen-config-docs.js)', () => {
    expect(renderConfigDocs(configSchema, source)).toBe(page)
  })

  it('documents every setting with its flag and environment variable', () => {
    for (const key of CONFIG_KEYS) {
      const name = kebab(key)
      expect(page).toContain(`### ${name}\n`)
      expect(page).toContain(`\`--${name}\``)
      expect(page).toContain(`\`PORTHOLE_${name.replace(/-/g, '_').toUpperCase()}\``)
    }
  })

  it('refuses to document a setting with no doc comment', () => {
    const bare = source.replace(/ {2}\/\*\* The host printed in tcp:\/\/ URLs[^\n]*\n/, '')
    expect(bare).not.toBe(source)
    expect(() => renderConfigDocs(configSchema, bare)).toThrow(/no doc comment above tcpHost/)
  })

  it('shows an example config that loads', () => {
    const example = /```yaml\n([\s\S]*?)```/.exec(page)![1]!
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-docs-'))
    try {
      writeFileSync(join(dir, 'authorized_keys'), '')
      const file = join(dir, 'porthole.yml')
      writeFileSync(file, example.replace('/etc/porthole/authorized_keys', join(dir, 'authorized_keys')))
      const config = loadConfig({ config: file }, {})
      expect(config.domain).toBe('tunnel.example.com')
      expect(config.httpsAddr).toEqual({ host: '0.0.0.0', port: 443 })
      expect(config.acmeEmail).toBe('ops@example.com')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
