// Porthole inspector page: the list of captured requests (ngrok's agent API, /api/requests/http), the detail
// of one, replay and replay-with-edit, and live updates from /api/events (Server-Sent Events, no polling).
// Everything is built with DOM calls and textContent: captured data is never parsed as HTML.
'use strict'

const MASKED = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie'])
const MAX_ITEMS = 500
const state = { requests: [], selected: null, filter: '', revealed: new Set(), views: {} }

const $ = (id) => document.getElementById(id)
function el (tag, props, ...children) {
  const node = document.createElement(tag)
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue
      if (key === 'class') node.className = value
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value)
      else if (key === 'text') node.textContent = value
      else node.setAttribute(key, value === true ? '' : String(value))
    }
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child))
  return node
}

// --- data --------------------------------------------------------------------------------------------

function decode (raw) {
  if (!raw) return new Uint8Array(0)
  const text = atob(raw)
  const bytes = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i)
  return bytes
}

/** The body part of a message's raw bytes (after the blank line that ends the head). */
function bodyOf (message) {
  if (!message) return new Uint8Array(0)
  if (message._body) return message._body
  const bytes = decode(message.raw)
  let start = bytes.length
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) { start = i + 4; break }
  }
  message._body = bytes.subarray(start)
  return message._body
}

function header (message, name) {
  if (!message) return ''
  for (const [key, values] of Object.entries(message.headers || {})) if (key.toLowerCase() === name) return values.join(', ')
  return ''
}

function asText (bytes) {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    // Control characters other than tab/newline mean binary.
    return /[\u0000-\u0008\u000e-\u001f]/.test(text) ? null : text
  } catch { return null }
}

function hexDump (bytes) {
  const lines = []
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16)
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ')
    const ascii = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`)
  }
  return lines.join('\n')
}

function prettyJson (text) {
  try { return JSON.stringify(JSON.parse(text), null, 2) } catch { return null }
}

function statusClass (request) {
  const code = request.response ? request.response.status_code : 0
  return `s${Math.floor(code / 100)}`
}

function ms (ns) {
  const value = ns / 1e6
  return value < 10 ? `${value.toFixed(1)} ms` : value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`
}

function ago (iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  if (seconds < 5) return 'just now'
  if (seconds < 60) return `${seconds}s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`
  return new Date(iso).toLocaleTimeString()
}

function matches (request, filter) {
  if (!filter) return true
  const r = request.request
  const text = [r.method, r.uri, request.tunnel_name, request.response ? request.response.status : 'no response',
    ...Object.entries(r.headers || {}).map(([k, v]) => `${k}: ${v.join(', ')}`), asText(bodyOf(r)) || ''].join('\n').toLowerCase()
  return filter.toLowerCase().split(/\s+/).filter(Boolean).every((word) => text.includes(word))
}

async function api (path, init) {
  const response = await fetch(path, init)
  if (response.status === 204) return null
  const json = await response.json().catch(() => null)
  if (!response.ok) throw new Error(json && json.msg ? `${json.error_code}: ${json.msg}` : `HTTP ${response.status}`)
  return json
}

// --- rendering ---------------------------------------------------------------------------------------

function renderList () {
  const list = $('list')
  const shown = state.requests.filter((r) => matches(r, state.filter))
  list.replaceChildren(...shown.map(renderItem))
  $('empty').hidden = state.requests.length > 0
  $('count').textContent = state.requests.length === 0 ? '' : state.filter ? `${shown.length} of ${state.requests.length} requests` : `${state.requests.length} request${state.requests.length === 1 ? '' : 's'}`
}

function renderItem (request, fresh) {
  const r = request.request
  const code = request.response ? String(request.response.status_code) : (request.error_code || 'ERR')
  return el('li', {
    class: `item${request.id === state.selected ? ' selected' : ''}${fresh === true ? ' fresh' : ''}`,
    'data-id': request.id,
    onclick: () => select(request.id),
  },
  el('span', { class: `method m-${r.method}`, text: r.method }),
  el('span', { class: 'path', title: r.uri, text: r.uri }),
  el('span', { class: 'meta' }, el('span', { text: ms(request.duration) }), el('span', { class: 'ago', 'data-start': request.start, text: ago(request.start) }),
    request.replay_of ? el('span', { class: 'tag', text: 'replay' }) : null),
  el('span', { class: 'status' }, el('span', { class: `badge ${statusClass(request)}`, text: code })))
}

function renderHeaders (message, key) {
  const rows = []
  for (const [name, values] of Object.entries(message.headers || {})) {
    for (const [i, value] of values.entries()) {
      const id = `${key}:${name}:${i}`
      const secret = MASKED.has(name.toLowerCase()) && !state.revealed.has(id)
      rows.push(el('tr', null, el('td', { text: name }), el('td', null,
        secret ? el('span', { class: 'masked', text: '••••••••' }) : value,
        MASKED.has(name.toLowerCase())
          ? el('button', { class: 'link reveal', type: 'button', onclick: () => { secret ? state.revealed.add(id) : state.revealed.delete(id); renderDetail() }, text: secret ? 'reveal' : 'hide' })
          : null)))
    }
  }
  return el('table', { class: 'headers' }, rows)
}

function renderBody (message, key) {
  const bytes = bodyOf(message)
  if (bytes.length === 0) return [el('div', { class: 'nobody', text: 'No body' })]
  const text = asText(bytes)
  const json = text !== null ? prettyJson(text) : null
  const modes = text === null ? ['hex'] : json !== null ? ['json', 'text', 'hex'] : ['text', 'hex']
  const mode = modes.includes(state.views[key]) ? state.views[key] : modes[0]
  const shown = mode === 'json' ? json : mode === 'text' ? text : hexDump(bytes)
  const size = message.body_size ?? bytes.length
  return [
    el('div', { class: 'body-bar' },
      modes.map((m) => el('button', { type: 'button', class: `seg${m === mode ? ' on' : ''}`, onclick: () => { state.views[key] = m; renderDetail() }, text: m === 'json' ? 'JSON' : m === 'hex' ? 'Hex' : 'Text' })),
      el('span', { class: 'info', text: `${size} bytes${message.truncated ? ` (first ${bytes.length} captured)` : ''}` })),
    el('pre', { class: 'body', text: shown }),
  ]
}

function renderDetail () {
  const pane = $('detail')
  const request = state.requests.find((r) => r.id === state.selected)
  if (!request) {
    pane.replaceChildren(el('div', { class: 'placeholder', text: 'Select a request to see its headers, body and timing.' }))
    return
  }
  const r = request.request
  const res = request.response
  const code = res ? res.status : (request.error_code ? `no response (${request.error_code})` : 'no response')
  pane.replaceChildren(
    el('div', { class: 'summary' },
      el('span', { class: `badge ${statusClass(request)}`, text: res ? String(res.status_code) : 'ERR' }),
      el('h1', null, `${r.method} ${r.uri}`)),
    el('div', { class: 'sub' },
      el('span', { text: request.tunnel_name }), el('span', { text: code }), el('span', { text: ms(request.duration) }),
      el('span', { text: `from ${request.remote_addr}` }), request.replay_of ? el('span', { class: 'tag', text: `replay of ${request.replay_of}` }) : null),
    el('div', { class: 'actions detail-actions' },
      el('button', { id: 'replay', class: 'primary', type: 'button', onclick: () => replay(request), text: 'Replay' }),
      el('button', { id: 'replay-edit', type: 'button', onclick: () => openEditor(request), text: 'Edit & replay' })),
    el('section', { class: 'card' },
      el('h2', null, 'Request', el('span', { class: 'muted', text: `${r.proto}` })),
      renderHeaders(r, `${request.id}:req`), renderBody(r, `${request.id}:req`)),
    res
      ? el('section', { class: 'card' },
        el('h2', null, 'Response', el('span', { class: 'muted', text: `${res.proto} ${res.status}` })),
        renderHeaders(res, `${request.id}:res`), renderBody(res, `${request.id}:res`))
      : el('section', { class: 'card' }, el('h2', null, 'Response'), el('div', { class: 'nobody', text: code })),
    el('section', { class: 'card' },
      el('h2', null, 'Timing'),
      el('dl', { class: 'timing' },
        el('dt', { text: 'Started' }), el('dd', { text: new Date(request.start).toLocaleString() }),
        el('dt', { text: 'Duration' }), el('dd', { text: ms(request.duration) }),
        el('dt', { text: 'Id' }), el('dd', { text: request.id }))))
}

function select (id) {
  state.selected = id
  for (const item of $('list').children) item.classList.toggle('selected', item.dataset.id === id)
  renderDetail()
}

function toast (text) {
  const node = $('toast')
  node.textContent = text
  node.classList.add('show')
  clearTimeout(toast.timer)
  toast.timer = setTimeout(() => node.classList.remove('show'), 2400)
}

// --- actions -----------------------------------------------------------------------------------------

async function replay (request, edits) {
  try {
    await api('/api/requests/http', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: request.id, tunnel_name: request.tunnel_name, ...edits }) })
    toast('Replayed')
  } catch (error) {
    toast(`Replay failed: ${error.message}`)
    throw error
  }
}

function openEditor (request) {
  const r = request.request
  $('edit-method').value = r.method
  $('edit-uri').value = r.uri
  $('edit-headers').value = Object.entries(r.headers || {}).flatMap(([k, v]) => v.map((x) => `${k}: ${x}`)).join('\n')
  $('edit-body').value = asText(bodyOf(r)) ?? ''
  $('edit-error').textContent = ''
  $('editor').dataset.id = request.id
  $('editor').showModal()
}

async function sendEdited (event) {
  if (event.submitter && event.submitter.value !== 'send') return
  event.preventDefault()
  const request = state.requests.find((r) => r.id === $('editor').dataset.id)
  if (!request) return $('editor').close()
  const headers = {}
  for (const line of $('edit-headers').value.split('\n')) {
    if (!line.trim()) continue
    const at = line.indexOf(':')
    if (at < 1) { $('edit-error').textContent = `Not a header: ${line}`; return }
    const name = line.slice(0, at).trim()
    ;(headers[name] ||= []).push(line.slice(at + 1).trim())
  }
  try {
    await replay(request, { method: $('edit-method').value.trim().toUpperCase(), uri: $('edit-uri').value.trim(), headers, body: $('edit-body').value })
    $('editor').close()
  } catch (error) {
    $('edit-error').textContent = error.message
  }
}

async function clearAll () {
  await api('/api/requests/http', { method: 'DELETE' })
  state.requests = []
  state.selected = null
  renderList()
  renderDetail()
}

function add (request) {
  if (state.requests.some((r) => r.id === request.id)) return
  state.requests.unshift(request)
  if (state.requests.length > MAX_ITEMS) state.requests.length = MAX_ITEMS
  if (matches(request, state.filter)) {
    $('list').prepend(renderItem(request, true))
    while ($('list').children.length > MAX_ITEMS) $('list').lastElementChild.remove()
  }
  $('empty').hidden = true
  renderCount()
}

function renderCount () {
  const shown = $('list').children.length
  $('count').textContent = state.filter ? `${shown} of ${state.requests.length} requests` : `${state.requests.length} request${state.requests.length === 1 ? '' : 's'}`
}

async function load () {
  const [list, tunnels] = await Promise.all([api(`/api/requests/http?limit=${MAX_ITEMS}`), api('/api/tunnels')])
  state.requests = list.requests
  renderTunnels(tunnels.tunnels)
  renderList()
  if (!state.selected && state.requests[0]) select(state.requests[0].id)
  else renderDetail()
}

function renderTunnels (tunnels) {
  const urls = tunnels.flatMap((t) => (t.public_urls || [t.public_url]).map((url) => ({ url, addr: t.config.addr })))
  $('tunnels').replaceChildren(...urls.map(({ url, addr }) => el('a', { class: 'tunnel', href: url, target: '_blank', rel: 'noopener noreferrer', title: `forwards to your -R ${addr}` },
    el('span', { class: 'proto', text: url.split(':')[0] }), url.replace(/^\w+:\/\//, ''))))
}

function live () {
  const source = new EventSource('/api/events')
  const indicator = $('live')
  source.addEventListener('open', () => {
    indicator.dataset.state = 'live'
    $('live-text').textContent = 'live'
    load().catch(() => {})
  })
  source.addEventListener('request', (event) => add(JSON.parse(event.data)))
  source.addEventListener('clear', () => { state.requests = []; state.selected = null; renderList(); renderDetail() })
  source.addEventListener('error', () => {
    indicator.dataset.state = 'down'
    $('live-text').textContent = 'reconnecting'
  })
}

document.addEventListener('DOMContentLoaded', () => {
  $('filter').addEventListener('input', (event) => { state.filter = event.target.value.trim(); renderList() })
  $('clear').addEventListener('click', () => clearAll().catch((error) => toast(error.message)))
  $('edit-form').addEventListener('submit', sendEdited)
  setInterval(() => { for (const node of document.querySelectorAll('.ago')) node.textContent = ago(node.dataset.start) }, 10_000)
  load().catch((error) => toast(error.message))
  live()
})
