// Compiles a PolicyDocument into a CompiledPolicy, validating every action on the way: a bad value throws a
// PortholeError naming the phase, rule and action, so nothing half-valid is ever bound.
import { PortholeError } from '../core/errors.js'
import type { Action, PolicyDocument, Rule } from './document.js'
import type { CompiledPolicy, ConnectStep, RequestStep, ResponseStep } from './compiled.js'
import { compileBasicAuth } from './actions/basic-auth.js'
import { compileRestrictIps } from './actions/restrict-ips.js'
import { compileAddHeaders, compileRemoveHeaders } from './actions/headers.js'

function where (phase: string, ruleIndex: number, actionIndex: number, error: unknown): never {
  if (error instanceof PortholeError) {
    throw new PortholeError(error.code, `${error.detail ?? ''} at ${phase}[${ruleIndex}].actions[${actionIndex}]`.trim(), { cause: error })
  }
  throw error
}

function checkRule (rule: Rule, phase: string, index: number): void {
  if (rule.expressions && rule.expressions.length > 0) {
    throw new PortholeError('PH_1002', `${phase}[${index}].expressions (CEL expressions are not supported yet)`)
  }
}

function requestStep (action: Action): RequestStep {
  switch (action.type) {
    case 'basic-auth': return compileBasicAuth(action)
    case 'restrict-ips': return compileRestrictIps(action)
    case 'add-headers': {
      const apply = compileAddHeaders(action)
      return (ctx) => { apply(ctx.headers); return undefined }
    }
    case 'remove-headers': {
      const apply = compileRemoveHeaders(action)
      return (ctx) => { apply(ctx.headers); return undefined }
    }
    default: throw new PortholeError('PH_1002', `action type ${JSON.stringify((action as { type: unknown }).type)}`)
  }
}

function responseStep (action: Action): ResponseStep {
  switch (action.type) {
    case 'add-headers': return compileAddHeaders(action)
    case 'remove-headers': return compileRemoveHeaders(action)
    default: throw new PortholeError('PH_1002', `action type ${JSON.stringify(action.type)} (not allowed in on_http_response)`)
  }
}

function compilePhase<T> (phase: string, rules: Rule[] | undefined, build: (action: Action) => T): T[] {
  const steps: T[] = []
  ;(rules ?? []).forEach((rule, ruleIndex) => {
    checkRule(rule, phase, ruleIndex)
    ;(rule.actions ?? []).forEach((action, actionIndex) => {
      try {
        steps.push(build(action))
      } catch (error) {
        where(phase, ruleIndex, actionIndex, error)
      }
    })
  })
  return steps
}

const orNull = <T>(steps: T[]): T[] | null => (steps.length > 0 ? steps : null)

/** Compiles for an endpoint of `proto`: TCP and TLS endpoints see no HTTP, so HTTP phases are refused. */
export function compilePolicy (document: PolicyDocument, proto: 'http' | 'tcp' | 'tls' = 'http'): CompiledPolicy {
  const connect = compilePhase('on_tcp_connect', document.on_tcp_connect, (action): ConnectStep => {
    if (action.type !== 'restrict-ips') throw new PortholeError('PH_1002', `action type ${JSON.stringify(action.type)} (not allowed in on_tcp_connect)`)
    return compileRestrictIps(action)
  })
  if (proto !== 'http' && (document.on_http_request?.length || document.on_http_response?.length)) {
    throw new PortholeError('PH_1002', `on_http_request/on_http_response (a ${proto} endpoint carries no HTTP)`)
  }
  return {
    onTcpConnect: orNull(connect),
    onHttpRequest: orNull(compilePhase('on_http_request', document.on_http_request, requestStep)),
    onHttpResponse: orNull(compilePhase('on_http_response', document.on_http_response, responseStep)),
  }
}
