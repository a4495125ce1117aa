// The seam between agent transports and the edge, driven with no transport at all: the HTTP edge routes to an
// endpoint whose Dialer hands out one end of an in-memory Duplex pair, with a real node:http service on the other
// end. What the edge needs from a transport is exactly (EndpointSpec, Dialer, Owner); its per-endpoint state goes
// when the registry unbinds the endpoint.
import { createServer, request, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Duplex } from 'node:stream'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ClientAddress, Dialer, Endpoint, EndpointSpec } from '../../src/core/endpoint.js'
import { Registry } from '../../src/core/registry.js'
import { HttpEdge } from '../../src/edge/http-edge.js'
import { compilePolicy } from '../../src/policy/compile.js'
import { policyFromFlags } from '../../src/policy/from-flags.js'
import { eventually } from '../e2e/harness.js'

/** Two connected in-memory streams: what one writes, the other reads; end() is a half-close. */
function duplexPair (): [Duplex, Duplex] {
  const sides: Duplex[] = []
  const make = (other: () => Duplex): Duplex => new Duplex({
    read () {},
    write (chunk: Buffer, _encoding, callback) {
      other().push(chunk)
      callback()
    },
    final (callback) {
      other().push(null)
      callback()
    },
    destroy (error, callback) {
      const peer = other()
      if (!peer.destroyed) peer.destroy()
      callback(error)
    },
  })
  sides.push(make(() => sides[1]!), make(() => sides[0]!))
  return [sides[0]!, sides[1]!]
}

const SPEC: EndpointSpec = { proto: 'http', schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' }, inspect: true }
const OWNER = { id: 'test-owner', persistent: true, known: true }

interface Scene {
  registry: Registry
  edge: HttpEdge
  port: number
  service: Server
  /** Every dial: the client address it was given and the agent-side stream. */
  dials: Array<{ client: ClientAddress, stream: Duplex }>
  bind (name: string, options?: { dial?: Dialer, policy?: ReturnType<typeof compilePolicy> }): Endpoint
}

let scene: Scene

beforeEach(async () => {
  const registry = new Registry({ domain: 'localhost', graceMs: 60_000 })
  const edge = new HttpEdge({
    registry, log: pino({ level: 'silent' }), maxRequestHeaderSize: 16 * 1024, maxResponseHeaderSize: 32 * 1024,
    idleTimeoutMs: 10_000, headerTimeoutMs: 10_000, upstreamTimeoutMs: 10_000, upstreamConnections: 4,
  })
  const { port } = await edge.listen('127.0.0.1', 0)
  // The service behind the agent: never listens; each dialled stream is handed to it as a connection.
  const service = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ path: req.url, forwardedFor: req.headers['x-forwarded-for'], host: req.headers.host }))
  })
  const dials: Scene['dials'] = []
  const dial: Dialer = async (client) => {
    const [edgeSide, agentSide] = duplexPair()
    dials.push({ client, stream: agentSide })
    service.emit('connection', agentSide)
    return edgeSide
  }
  scene = {
    registry, edge, port, service, dials,
    bind (name, options = {}) {
      const endpoint = registry.bind({ bindAddr: name, slot: `${name}:80`, spec: SPEC, owner: OWNER, dial: options.dial ?? dial, hooks: {}, agent: { transport: 'ssh', sessionId: 's1' } })
      edge.attach(endpoint, options.policy ?? compilePolicy({}))
      return endpoint
    },
  }
})

afterEach(async () => {
  await scene.edge.close()
  scene.service.close()
})

function get (host: string, path = '/', headers: Record<string, string> = {}): Promise<{ status: number, headers: IncomingMessage['headers'], body: string, localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: scene.port, path, headers: { host, ...headers }, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, localPort: (req.socket!.address() as AddressInfo).port }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('HTTP edge over an in-memory Dialer', () => {
  it('routes a request through the Dialer, which gets the public client address as its argument', async () => {
    scene.bind('mem')
    const res = await get('mem.localhost', '/hello?x=1')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ path: '/hello?x=1', forwardedFor: '127.0.0.1', host: 'mem.localhost' })
    expect(scene.dials).toHaveLength(1)
    expect(scene.dials[0]!.client).toEqual({ remoteAddress: '127.0.0.1', remotePort: res.localPort })
  })

  it('runs the endpoint policy compiled at attach time (basic auth) before dialling', async () => {
    const policy = compilePolicy(policyFromFlags({ ...emptyFlags(), basicAuth: ['ann:s3cret'] }))
    scene.bind('locked', { policy })
    const refused = await get('locked.localhost')
    expect(refused.status).toBe(401)
    expect(scene.dials).toHaveLength(0)
    const allowed = await get('locked.localhost', '/', { authorization: `Basic ${Buffer.from('ann:s3cret').toString('base64')}` })
    expect(allowed.status).toBe(200)
    expect(scene.dials).toHaveLength(1)
  })

  it('a Dialer that fails gives the catalogue error, not a hang', async () => {
    scene.bind('down', { dial: async () => { throw Object.assign(new Error('agent gone'), { code: 'ECONNREFUSED' }) } })
    const res = await get('down.localhost')
    expect(res.status).toBeGreaterThanOrEqual(500)
    expect(res.headers['porthole-error-code']).toMatch(/^PH_30/)
  })

  it('drops its per-endpoint state when the registry unbinds the endpoint: pool closed, streams gone', async () => {
    const endpoint = scene.bind('gone')
    expect((await get('gone.localhost')).status).toBe(200)
    expect(scene.edge.poolStats(endpoint.id)).toBeDefined()
    const stream = scene.dials[0]!.stream
    scene.registry.unbind(endpoint)
    expect(scene.edge.poolStats(endpoint.id)).toBeUndefined()
    await eventually(() => stream.destroyed)
    const after = await get('gone.localhost')
    expect(after.headers['porthole-error-code']).toBe('PH_3001') // offline: the owner keeps the name for a while
    // Bound again (same name, new endpoint id): fresh state, and the old one is not resurrected.
    const again = scene.bind('gone')
    expect(again.id).not.toBe(endpoint.id)
    expect((await get('gone.localhost')).status).toBe(200)
    expect(scene.dials).toHaveLength(2)
  })
})

function emptyFlags (): Parameters<typeof policyFromFlags>[0] {
  return {
    basicAuth: [], cidrAllow: [], cidrDeny: [], requestHeaderAdd: [], requestHeaderRemove: [], responseHeaderAdd: [], responseHeaderRemove: [],
    uaFilterAllow: [], uaFilterDeny: [], circuitBreaker: [], verifyWebhook: [], verifyWebhookSecret: [],
    oauth: [], oauthClientId: [], oauthClientSecret: [], oauthScope: [], oauthAllowEmail: [], oauthAllowDomain: [],
    oidc: [], oidcClientId: [], oidcClientSecret: [], oidcScope: [],
  }
}
