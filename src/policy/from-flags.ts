// Compiles command-line module flags (as ngrok's agent and SSH gateway spell them) into policy rules.
// Order matters and mirrors ngrok: IP rules first, then authentication, then header changes.
import { PortholeError } from '../core/errors.js'
import type { PolicyDocument, Rule } from './document.js'

export interface ModuleFlags {
  basicAuth: string[]
  cidrAllow: string[]
  cidrDeny: string[]
  requestHeaderAdd: string[]
  requestHeaderRemove: string[]
  responseHeaderAdd: string[]
  responseHeaderRemove: string[]
}

/** 'Name: value' -> [Name, value]; throws PH_1005 naming the flag. */
export function splitHeader (text: string, flag: string): [string, string] {
  const colon = text.indexOf(':')
  if (colon <= 0) throw new PortholeError('PH_1005', `${JSON.stringify(text)} for ${flag} (want 'Name: value')`)
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()]
}

function headerAdds (values: string[], flag: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const value of values) {
    const [name, text] = splitHeader(value, flag)
    headers[name] = text
  }
  return headers
}

export function policyFromFlags (flags: ModuleFlags): PolicyDocument {
  const connect: Rule[] = []
  const request: Rule[] = []
  const response: Rule[] = []
  if (flags.cidrAllow.length > 0 || flags.cidrDeny.length > 0) {
    connect.push({ name: 'cidr flags', actions: [{ type: 'restrict-ips', config: { allow: flags.cidrAllow, deny: flags.cidrDeny } }] })
  }
  if (flags.basicAuth.length > 0) {
    request.push({ name: 'basic-auth flag', actions: [{ type: 'basic-auth', config: { credentials: flags.basicAuth } }] })
  }
  if (flags.requestHeaderRemove.length > 0) {
    request.push({ name: 'request header flags', actions: [{ type: 'remove-headers', config: { headers: flags.requestHeaderRemove } }] })
  }
  if (flags.requestHeaderAdd.length > 0) {
    request.push({ name: 'request header flags', actions: [{ type: 'add-headers', config: { headers: headerAdds(flags.requestHeaderAdd, '--request-header-add') } }] })
  }
  if (flags.responseHeaderRemove.length > 0) {
    response.push({ name: 'response header flags', actions: [{ type: 'remove-headers', config: { headers: flags.responseHeaderRemove } }] })
  }
  if (flags.responseHeaderAdd.length > 0) {
    response.push({ name: 'response header flags', actions: [{ type: 'add-headers', config: { headers: headerAdds(flags.responseHeaderAdd, '--response-header-add') } }] })
  }
  const document: PolicyDocument = {}
  if (connect.length > 0) document.on_tcp_connect = connect
  if (request.length > 0) document.on_http_request = request
  if (response.length > 0) document.on_http_response = response
  return document
}
