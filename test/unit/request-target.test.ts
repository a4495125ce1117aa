// requestTarget: the authority a request is routed by and the origin-form path it is forwarded with
// (the end-to-end cases are in test/hostile/request-targets.test.ts).
import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { requestTarget, routingHost } from '../../src/edge/request-target.js'

function h1 (method: string, url: string, ...hosts: string[]): IncomingMessage {
  return { method, url, httpVersionMajor: 1, rawHeaders: hosts.flatMap((h) => ['Host', h]), headers: hosts.length > 0 ? { host: hosts[0] } : {} } as unknown as IncomingMessage
}

function h2 (headers: Record<string, string>): IncomingMessage {
  return { method: headers[':method'] ?? 'GET', url: headers[':path'], httpVersionMajor: 2, rawHeaders: Object.entries(headers).flat(), headers } as unknown as IncomingMessage
}

describe('requestTarget', () => {
  it('origin-form: routes by Host, keeps the path byte for byte', () => {
    expect(requestTarget(h1('GET', '/a/../b?x=%2F', 'App.Localhost.:8080'), 'http')).toEqual({ host: 'app.localhost', authority: 'App.Localhost.:8080', path: '/a/../b?x=%2F' })
    expect(requestTarget(h1('GET', '/', '[::1]:80'), 'http')).toEqual({ host: '[::1]', authority: '[::1]:80', path: '/' })
    expect(requestTarget(h1('GET', '/'), 'http')).toEqual({ host: '', authority: '', path: '/' })
  })

  it('absolute-form: the target\'s authority replaces Host; the path goes on in origin-form', () => {
    expect(requestTarget(h1('GET', 'http://a.localhost:8080/admin?q', 'b.localhost'), 'http')).toEqual({ host: 'a.localhost', authority: 'a.localhost:8080', path: '/admin?q' })
    expect(requestTarget(h1('GET', 'http://a.localhost?q', 'a.localhost'), 'http')).toMatchObject({ path: '/?q' })
    expect(requestTarget(h1('GET', 'https://a.localhost/', 'a.localhost'), 'https')).toMatchObject({ host: 'a.localhost', path: '/' })
  })

  it('refuses what cannot be routed safely, naming the value', () => {
    expect(requestTarget(h1('GET', '/', 'a.localhost', 'b.localhost'), 'http')).toEqual({ code: 'PH_3012', detail: 'two Host headers, "a.localhost" and "b.localhost"' })
    for (const host of ['a.localhost:', 'a.localhost:0', 'a.localhost:65536', 'a.localhost:99999', 'a.localhost:abc', 'a.localhost: 80', 'u@a.localhost', 'a:b:c']) {
      expect(requestTarget(h1('GET', '/', host), 'http'), host).toMatchObject({ code: 'PH_3013' })
    }
    expect(requestTarget(h1('GET', '/', 'a.localhost:65535'), 'http')).toMatchObject({ host: 'a.localhost' })
    expect(requestTarget(h1('GET', '/', 'evil.example/.team.localhost'), 'http')).toMatchObject({ code: 'PH_3007' })
    expect(requestTarget(h1('GET', '/', ':80'), 'http')).toMatchObject({ code: 'PH_3007' })
    expect(requestTarget(h1('OPTIONS', '*', 'a.localhost'), 'http')).toEqual({ code: 'PH_3014', detail: 'OPTIONS *' })
    expect(requestTarget(h1('CONNECT', 'a.localhost:443', 'a.localhost'), 'http')).toMatchObject({ code: 'PH_3014' })
    expect(requestTarget(h1('GET', 'a.localhost:80', 'a.localhost'), 'http')).toMatchObject({ code: 'PH_3014' })
    expect(requestTarget(h1('GET', 'ftp://a.localhost/', 'a.localhost'), 'http')).toMatchObject({ code: 'PH_3014' })
    expect(requestTarget(h1('GET', 'https://a.localhost/', 'a.localhost'), 'http')).toMatchObject({ code: 'PH_3015' })
    expect(requestTarget(h1('GET', 'http://u:p@a.localhost/', 'a.localhost'), 'http')).toMatchObject({ code: 'PH_3013' })
    expect(requestTarget(h1('GET', 'http://a.localhost:x/', 'a.localhost'), 'http')).toMatchObject({ code: 'PH_3013' })
    // A bad Host is refused even where the absolute-form target's authority wins (RFC 9112 3.2).
    expect(requestTarget(h1('GET', 'http://a.localhost/', 'a.localhost:abc'), 'http')).toMatchObject({ code: 'PH_3013' })
  })

  it('HTTP/2: :authority routes; a host naming the same authority is fine, another one is refused', () => {
    expect(requestTarget(h2({ ':path': '/x', ':authority': 'a.localhost', ':scheme': 'https' }), 'https')).toEqual({ host: 'a.localhost', authority: 'a.localhost', path: '/x' })
    expect(requestTarget(h2({ ':path': '/x', ':authority': 'a.localhost:443', ':scheme': 'https', host: 'A.localhost.' }), 'https')).toMatchObject({ host: 'a.localhost', authority: 'a.localhost:443' })
    expect(requestTarget(h2({ ':path': '/x', ':authority': 'a.localhost', ':scheme': 'https', host: 'b.localhost' }), 'https')).toMatchObject({ code: 'PH_3012' })
    expect(requestTarget(h2({ ':path': '/x', ':authority': 'a.localhost:8443', ':scheme': 'https', host: 'a.localhost' }), 'https')).toMatchObject({ code: 'PH_3012' })
    expect(requestTarget(h2({ ':path': '/x', ':authority': 'a.localhost', ':scheme': 'http' }), 'https')).toMatchObject({ code: 'PH_3015' })
    expect(requestTarget(h2({ ':path': '/x', host: 'a.localhost', ':scheme': 'https' }), 'https')).toMatchObject({ host: 'a.localhost' })
    expect(requestTarget(h2({ ':method': 'OPTIONS', ':path': '*', ':authority': 'a.localhost' }), 'https')).toMatchObject({ code: 'PH_3014' })
    expect(requestTarget(h2({ ':path': 'http://b.localhost/', ':authority': 'a.localhost' }), 'https')).toMatchObject({ code: 'PH_3014' })
  })

  it('routingHost: lower case, no port, no trailing dot; empty for anything but a host name', () => {
    expect(routingHost('A.Localhost.:80')).toBe('a.localhost')
    expect(routingHost('a.localhost:abc')).toBe('')
    expect(routingHost('a_b.localhost')).toBe('')
    expect(routingHost(undefined)).toBe('')
  })
})
