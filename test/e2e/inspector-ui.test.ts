// The inspector's web page in real Chromium (playwright-core driving Debian's /usr/bin/chromium, headless),
// reached through a real `ssh -L`: the list updates live when a request arrives (over SSE, no polling),
// secrets are masked until revealed, replay and replay-with-edit reach the upstream, and a screenshot of the
// page is saved to docs/inspector.png.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { request } from 'undici'
import type { Endpoint } from '../../src/core/endpoint.js'
import { connect, eventually, fetchVia, freePort, type SshClient, type TestGateway } from './harness.js'
import { recordFor, startFakeInspected, type FakeInspectedScene, type FakeStore, type Seen } from './inspect-fakes.js'

// The repo's screenshot is rewritten only on request (UPDATE_SCREENSHOTS=1 npx vitest run test/e2e/inspector-ui.test.ts);
// other runs write it to a temporary file, so a test run never changes a tracked file.
const SCREENSHOT = process.env.UPDATE_SCREENSHOTS === '1'
  ? resolve(import.meta.dirname, '../../docs/inspector.png')
  : join(tmpdir(), `porthole-inspector-${process.pid}.png`)

let gateway: TestGateway
let upstream: FakeInspectedScene['upstream']
let browser: Browser
let page: Page
let client: SshClient
let endpoint: Endpoint
let publicUrl: string
let inspectorUrl: string
let store: FakeStore
let seen: Seen[]

beforeAll(async () => {
  ({ gateway, upstream, store, seen } = await startFakeInspected({ received: true }))
  const local = await freePort()
  client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`localhost:80:localhost:${upstream.port}`], command: 'http', extra: ['-L', `${local}:localhost:4040`] })
  publicUrl = (await client.urls())[0]!
  endpoint = gateway.registry.endpoints().find((e) => e.host === new URL(publicUrl).hostname)!
  inspectorUrl = `http://localhost:${local}/`
  await eventually(async () => (await request(`${inspectorUrl}api/`)).statusCode === 200, 15_000)
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] })
  page = await browser.newPage({ viewport: { width: 1360, height: 820 }, colorScheme: 'light' })
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await client?.kill()
  await gateway?.stop()
  await upstream?.close()
})

/** A few realistic requests as the edge would capture them (what a webhook developer sees). */
function seed (): void {
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000010000000100806000000', 'hex')
  store.add(recordFor(endpoint, { uri: '/', durationMs: 41.7, responseHeaders: { 'Content-Type': ['text/html; charset=utf-8'] }, responseBody: Buffer.from('<!doctype html><h1>Hello</h1>') }))
  store.add(recordFor(endpoint, { uri: '/favicon.ico', durationMs: 3.2, status: 404, responseBody: Buffer.from('not found') }))
  store.add(recordFor(endpoint, { uri: '/logo.png', durationMs: 8.9, responseHeaders: { 'Content-Type': ['image/png'] }, responseBody: png }))
  store.add(recordFor(endpoint, { method: 'POST', uri: '/api/orders', durationMs: 1204, status: 500, body: Buffer.from('{"sku":"A-1","qty":2}'), headers: { 'Content-Type': ['application/json'] }, responseBody: Buffer.from('{"error":"database unavailable"}') }))
}

describe('inspector web UI (chromium through ssh -L)', () => {
  it('lists captured requests and adds new ones live, without polling', async () => {
    seed()
    await page.goto(inspectorUrl)
    await page.waitForSelector('.live[data-state="live"]')
    await eventually(async () => (await page.locator('.item').count()) === 4)
    const polled: string[] = []
    page.on('request', (r) => { if (r.url().includes('/api/requests/http')) polled.push(r.url()) })

    await fetchVia(gateway, `${publicUrl}/webhooks/stripe`, { method: 'POST', body: '{"type":"invoice.paid"}', headers: { 'content-type': 'application/json' } })
    const hook = recordFor(endpoint, {
      method: 'POST',
      uri: '/webhooks/stripe',
      body: Buffer.from('{"id":"evt_1Q2w3E","type":"invoice.paid","data":{"object":{"amount_paid":4200,"currency":"usd","customer":"cus_9s6XKzkNRiz8i3"}}}'),
      headers: { 'Content-Type': ['application/json'], 'Stripe-Signature': ['t=1732934400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd'], Authorization: ['Bearer sk_test_secret_value'] },
    })
    store.add(hook)
    await page.waitForSelector(`.item[data-id="${hook.id}"]`)
    expect(await page.locator('.item').first().getAttribute('data-id')).toBe(hook.id)
    expect(polled).toEqual([])
  })

  it('masks Authorization until revealed, shows JSON pretty-printed, filters', async () => {
    const hook = store.list(endpoint.owner.id)[0]!
    await page.click(`.item[data-id="${hook.id}"]`)
    await page.waitForSelector('#detail h1')
    expect(await page.textContent('#detail h1')).toBe('POST /webhooks/stripe')
    const detail = (): Promise<string> => page.locator('#detail').innerText()
    expect(await detail()).not.toContain('sk_test_secret_value')
    expect(await detail()).toContain('"amount_paid": 4200')
    await page.click('.reveal')
    expect(await detail()).toContain('Bearer sk_test_secret_value')
    await page.click('.reveal') // hidden again for the screenshot
    expect(await detail()).not.toContain('sk_test_secret_value')

    await page.fill('#filter', 'favicon')
    await eventually(async () => (await page.locator('.item').count()) === 1)
    await page.fill('#filter', '')
    await eventually(async () => (await page.locator('.item').count()) === 5)

    // A binary body is shown as a hex dump.
    const logo = store.list(endpoint.owner.id).find((r) => r.request.uri === '/logo.png')!
    await page.click(`.item[data-id="${logo.id}"]`)
    await page.waitForSelector('pre.body')
    expect(await page.locator('pre.body').last().innerText()).toMatch(/^00000000 {2}89 50 4e 47 0d 0a 1a 0a/)
  })

  it('replays a request, and a changed copy, to the upstream', async () => {
    const hook = store.list(endpoint.owner.id).find((r) => r.request.uri === '/webhooks/stripe')!
    await page.click(`.item[data-id="${hook.id}"]`)
    const before = seen.length
    await page.click('#replay')
    await eventually(() => seen.length === before + 1)
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/webhooks/stripe' })
    expect(JSON.parse(seen.at(-1)!.body).type).toBe('invoice.paid')
    // The replay shows up in the list, live, marked as one.
    await eventually(async () => (await page.locator('.item .tag').count()) === 1)

    await page.click(`.item[data-id="${hook.id}"]`)
    await page.click('#replay-edit')
    await page.fill('#edit-method', 'PUT')
    await page.fill('#edit-uri', '/webhooks/stripe?retry=1')
    await page.fill('#edit-body', '{"type":"invoice.payment_failed"}')
    await page.click('#edit-send')
    await eventually(() => seen.length === before + 2)
    expect(seen.at(-1)).toEqual({ method: 'PUT', url: '/webhooks/stripe?retry=1', body: '{"type":"invoice.payment_failed"}' })
    await eventually(async () => !(await page.locator('#editor').evaluate((d) => (d as HTMLDialogElement).open)))
  })

  it('looks decent (a screenshot; docs/inspector.png with UPDATE_SCREENSHOTS=1)', async () => {
    const hook = store.list(endpoint.owner.id).find((r) => r.request.uri === '/webhooks/stripe' && r.replayOf === undefined)!
    await page.click(`.item[data-id="${hook.id}"]`)
    await page.waitForSelector('#detail h1')
    await page.waitForTimeout(1300) // the "fresh" highlight of the last arrivals fades
    await page.waitForSelector('#toast:not(.show)', { state: 'attached' })
    await page.waitForTimeout(300) // and the toast's own fade
    await page.screenshot({ path: SCREENSHOT })
    expect(readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe('PNG')
    expect(await page.locator('.badge.s5').count()).toBeGreaterThan(0)
    expect(await page.locator('.badge.s4').count()).toBeGreaterThan(0)
  })
})
