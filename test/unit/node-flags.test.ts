// The gateway's V8 flags (src/cli/node-flags.ts) are the same everywhere we start node: npm start, the
// container's entrypoint, the systemd unit. A place that forgets them runs a slower gateway than the bench measured.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { GATEWAY_NODE_FLAGS } from '../../src/cli/node-flags.js'
import { renderUnit } from '../../src/cli/service.js'

const ROOT = join(import.meta.dirname, '..', '..')

describe('gateway node flags', () => {
  it('npm start, the Dockerfile entrypoint and the systemd unit all pass them to node', () => {
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))![1]!) as string[]
    const exec = /^ExecStart=(.*)$/m.exec(renderUnit({ node: '/usr/bin/node', bin: '/opt/porthole/bin/porthole.js', config: '/etc/porthole/porthole.yml', docs: '/opt/porthole/docs/deploy.md' }))![1]!
    expect(GATEWAY_NODE_FLAGS.length).toBeGreaterThan(0)
    for (const flag of GATEWAY_NODE_FLAGS) {
      expect(start).toMatch(new RegExp(`^node ${flag} bin/porthole\\.js serve$`))
      expect(entrypoint).toEqual(['node', flag, '/app/bin/porthole.js'])
      expect(exec.startsWith(`/usr/bin/node ${flag} /opt/porthole/bin/porthole.js serve`)).toBe(true)
    }
  })
})
