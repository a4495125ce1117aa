// Actions that answer the request themselves or change where it goes: deny, custom-response, redirect,
// url-rewrite. Strings may interpolate CEL (`${req.host}`); regexes are compiled once at bind time.
import { compileTemplate, requestVars } from '../cel.js'
import type { CustomResponseAction, DenyAction, RedirectAction, UrlRewriteAction } from '../document.js'
import type { HttpRequestContext, RequestStep } from '../compiled.js'
import { headerName, headerValue } from './headers.js'
import { compileRegex, replaceFirst, type Regex } from '../regex.js'

type Template = ReturnType<typeof compileTemplate>

function render (template: Template, ctx: HttpRequestContext): string {
  return typeof template === 'string' ? template : template(requestVars(ctx))
}

function compileHeaders (headers: Record<string, string> | undefined): [string, Template][] {
  return Object.entries(headers ?? {}).map(([name, value]) => {
    const lower = headerName(name)
    return [lower, compileTemplate(headerValue(lower, value), `header ${lower}`)]
  })
}

function renderHeaders (headers: [string, Template][], ctx: HttpRequestContext): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of headers) out[name] = render(value, ctx).replace(/[\r\n]/g, ' ')
  return out
}

/** `from` on RE2 (policy/regex.ts): linear in the URL's length whatever the pattern. */
function regex (source: string | undefined): Regex | null {
  return source === undefined ? null : compileRegex(source, 'from')
}

const PORT = /:(\d{1,5})$/

/** The request's full public URL, what redirect and url-rewrite patterns match against: the port the client
 *  named in Host is part of it (as ngrok documents), so a redirect on a gateway at :8080 stays there. */
function urlOf (ctx: HttpRequestContext): string {
  const sent = ctx.headers.host
  const port = typeof sent === 'string' && !ctx.host.startsWith('[') ? PORT.exec(sent)?.[1] : undefined
  return `${ctx.protocol}://${ctx.host}${port === undefined ? '' : `:${port}`}${ctx.path}`
}

export function compileDeny (action: DenyAction): RequestStep {
  const status = action.config?.status_code ?? 403
  return () => ({ response: { status, headers: { 'porthole-error-code': 'PH_3102' }, body: `${status} denied\nPH_3102: denied by the endpoint's traffic policy\n` } })
}

export function compileCustomResponse (action: CustomResponseAction): RequestStep {
  const body = compileTemplate(action.config.body ?? action.config.content ?? '', 'body')
  const headers = compileHeaders(action.config.headers)
  const status = action.config.status_code ?? 200
  return (ctx) => ({ response: { status, headers: renderHeaders(headers, ctx), body: render(body, ctx) } })
}

export function compileRedirect (action: RedirectAction): RequestStep {
  const from = regex(action.config.from)
  const to = compileTemplate(action.config.to, 'to')
  const headers = compileHeaders(action.config.headers)
  const status = action.config.status_code ?? 302
  return (ctx) => {
    const url = urlOf(ctx)
    if (from && !from.test(url)) return undefined
    const target = from ? replaceFirst(from, url, render(to, ctx)) : render(to, ctx)
    return { response: { status, headers: { ...renderHeaders(headers, ctx), location: target.replace(/[\r\n]/g, '') }, body: '' } }
  }
}

export function compileUrlRewrite (action: UrlRewriteAction): RequestStep {
  const from = regex(action.config.from)
  const to = compileTemplate(action.config.to, 'to')
  return (ctx) => {
    const url = urlOf(ctx)
    if (from && !from.test(url)) return undefined
    const rewritten = from ? replaceFirst(from, url, render(to, ctx)) : render(to, ctx)
    // Only the path and query reach the upstream; a rewrite to another host is not a proxy to it.
    let path: string
    try {
      const parsed = new URL(rewritten, url)
      path = `${parsed.pathname}${parsed.search}`
    } catch {
      return undefined
    }
    ctx.path = path
    return undefined
  }
}
