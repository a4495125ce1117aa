// Compiles a PolicyDocument into a CompiledPolicy, validating every action on the way: a bad value throws a
// PortholeError naming the phase, rule and action, so nothing half-valid is ever bound. A rule with
// expressions becomes one guarded step: its actions run only when every expression holds.
// An expression that cannot be evaluated at run time (the checker in cel-check.ts refuses typos at bind time;
// what is left is data: `req.headers['x-key'][0]` without that header) fails closed: a rule whose actions
// protect (deny, restrict-ips, the auth actions, rate-limit, close-connection) applies, any other rule does
// not. Each such rule reports its first failure once, on the session's terminal and in the gateway's log.
import diagnostics from 'node:diagnostics_channel'
import { PortholeError } from '../core/errors.js'
import type { Action, PolicyDocument, Rule } from './document.js'
import type { CompiledPolicy, CompileOptions, ConnectContext, ConnectStep, Denial, RequestStep, ResponseStep, RuleError } from './compiled.js'
import { allHold, compileExpression, connectVars, requestVars, responseVars, type CelProgram } from './cel.js'
import { compileRateLimit } from './actions/rate-limit.js'
import { compileCircuitBreaker } from './actions/circuit-breaker.js'
import { CLOSE, compileLog, compileSetVars } from './actions/vars-and-log.js'
import { compileBasicAuth } from './actions/basic-auth.js'
import { compileRestrictIps } from './actions/restrict-ips.js'
import { compileAddHeaders, compileRemoveHeaders } from './actions/headers.js'
import { compileCustomResponse, compileDeny, compileRedirect, compileUrlRewrite } from './actions/respond.js'
import { compileCompressResponse } from './actions/compress.js'
import { compileVerifyWebhook } from './actions/verify-webhook.js'
import { compileJwtValidation } from './actions/jwt-validation.js'
import { compileOAuth } from './actions/oauth.js'
import { compileOidc } from './actions/oidc.js'
import { observedStep } from './decisions.js'

type Phase = 'on_tcp_connect' | 'on_http_request' | 'on_http_response'

/** Rule errors for the gateway's log (gateway.ts subscribes), whoever compiled the policy. */
export const policyErrorChannel = diagnostics.channel('porthole:policy:error')

/** Actions that keep someone out: a rule holding one applies when its expression cannot be evaluated. */
const PROTECTIVE = new Set<string>(['deny', 'restrict-ips', 'basic-auth', 'jwt-validation', 'oauth', 'openid-connect', 'oidc',
  'verify-webhook', 'rate-limit', 'close-connection'])

function connectStep (action: Action): ConnectStep {
  switch (action.type) {
    case 'restrict-ips': return compileRestrictIps(action)
    case 'deny': return () => ({ code: 'PH_3102' })
    case 'close-connection': return () => CLOSE
    case 'set-vars': {
      const apply = compileSetVars(action)
      return (ctx) => { apply(ctx, () => connectVars(ctx)); return undefined }
    }
    case 'log': {
      const log = compileLog(action, 'on_tcp_connect')
      return (ctx) => { log(ctx.endpointHost, () => connectVars(ctx)); return undefined }
    }
    default: throw new PortholeError('PH_1008', `action type ${JSON.stringify(action.type)} is not allowed in on_tcp_connect`)
  }
}

function requestStep (action: Action, options: CompileOptions): RequestStep {
  switch (action.type) {
    case 'basic-auth': return compileBasicAuth(action)
    case 'restrict-ips': return compileRestrictIps(action)
    case 'add-headers': {
      const apply = compileAddHeaders(action)
      return (ctx) => { apply(ctx.headers, () => requestVars(ctx)); return undefined }
    }
    case 'remove-headers': {
      const apply = compileRemoveHeaders(action)
      return (ctx) => { apply(ctx.headers); return undefined }
    }
    case 'deny': return compileDeny(action)
    case 'custom-response': return compileCustomResponse(action)
    case 'redirect': return compileRedirect(action)
    case 'url-rewrite': return compileUrlRewrite(action)
    case 'rate-limit': return compileRateLimit(action, options)
    case 'circuit-breaker': return compileCircuitBreaker(action, options)
    case 'close-connection': return () => CLOSE
    case 'set-vars': {
      const apply = compileSetVars(action)
      return (ctx) => { apply(ctx, () => requestVars(ctx)); return undefined }
    }
    case 'log': {
      const log = compileLog(action, 'on_http_request')
      return (ctx) => { log(ctx.endpointHost, () => requestVars(ctx)); return undefined }
    }
    case 'verify-webhook': return compileVerifyWebhook(action, options.now)
    case 'jwt-validation': return compileJwtValidation(action, options)
    case 'oauth': return compileOAuth(action, options)
    case 'openid-connect':
    case 'oidc': return compileOidc(action, options)
    case 'compress-response': throw new PortholeError('PH_1008', 'action type "compress-response" belongs in on_http_response')
  }
}

function responseStep (action: Action): ResponseStep {
  switch (action.type) {
    case 'compress-response': return compileCompressResponse(action)
    case 'add-headers': {
      const apply = compileAddHeaders(action)
      return (ctx) => apply(ctx.headers, () => responseVars(ctx))
    }
    case 'remove-headers': {
      const apply = compileRemoveHeaders(action)
      return (ctx) => apply(ctx.headers)
    }
    case 'set-vars': {
      const apply = compileSetVars(action)
      return (ctx) => {
        const vars = responseVars(ctx)
        apply(ctx.request, () => vars)
        Object.assign(vars, ctx.request.results) // the response's variables were built before the results existed
      }
    }
    case 'log': {
      const log = compileLog(action, 'on_http_response')
      return (ctx) => log(ctx.request.endpointHost, () => responseVars(ctx))
    }
    default: throw new PortholeError('PH_1008', `action type ${JSON.stringify(action.type)} is not allowed in on_http_response`)
  }
}

/** Control characters as JSON escapes: an action's detail may quote config text (a metadata key, a regex)
 *  holding a newline, and the error must stay one line on the SSH terminal and in the log. */
const oneLine = (text: string): string => text.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1))

function located (where: string, error: unknown): never {
  if (error instanceof PortholeError) {
    throw new PortholeError(error.code, oneLine(`${error.detail ?? ''} at ${where}`.trim()), { cause: error })
  }
  throw error
}

/** Compiles each rule of a phase into one step; `vars` builds the CEL variables for guarded rules and
 *  `endpointOf` names the endpoint in a rule error. */
function compilePhase<C, R> (
  phase: Phase,
  rules: Rule[] | undefined,
  build: (action: Action) => (ctx: C) => R,
  vars: (ctx: C) => Record<string, unknown>,
  endpointOf: (ctx: C) => string,
  options: CompileOptions,
): ((ctx: C) => R | undefined)[] {
  return (rules ?? []).map((rule, ruleIndex) => {
    const expressions = rule.expressions ?? []
    const where = (i: number): string => `${phase}[${ruleIndex}].expressions[${i}]`
    const guard: CelProgram[] = expressions.map((expression, i) => compileExpression(expression, where(i), { kind: phase }))
    const steps = (rule.actions ?? []).map((action, actionIndex) => {
      try {
        return observedStep(action.type, phase, build(action))
      } catch (error) {
        return located(`${phase}[${ruleIndex}].actions[${actionIndex}]`, error)
      }
    })
    const run = (ctx: C): R | undefined => runSteps(steps, 0, ctx)
    if (guard.length === 0) return steps.length === 1 ? steps[0]! : run
    const protective = (rule.actions ?? []).some((action) => PROTECTIVE.has(action.type))
    let reported = false
    return (ctx: C) => {
      const holds = allHold(guard, vars(ctx))
      if (holds === true) return run(ctx)
      if (holds === false) return undefined
      if (!reported) {
        reported = true
        report({ where: where(holds.index), expression: expressions[holds.index]!, reason: holds.reason, applied: protective, endpoint: endpointOf(ctx) }, options)
      }
      return protective ? run(ctx) : undefined
    }
  })
}

/** A rule error as one line for a terminal or a log: `PH_1045: ... on_http_request[0].expressions[0] "..." ...`. */
export function ruleErrorLine (error: RuleError): string {
  const effect = error.applied ? 'the rule applied anyway (its actions protect: fail closed)' : 'the rule did not apply'
  return new PortholeError('PH_1045', oneLine(`${error.where} ${JSON.stringify(error.expression)} on ${error.endpoint}: ${error.reason}; ${effect}; said once per rule`)).toLine()
}

function report (error: RuleError, options: CompileOptions): void {
  if (policyErrorChannel.hasSubscribers) policyErrorChannel.publish(error)
  options.onRuleError?.(error)
}

/** Runs steps in order until one answers; a step answering with a promise continues the rest after it. */
export function runSteps<C, R> (steps: readonly ((ctx: C) => R)[], from: number, ctx: C): R | undefined {
  for (let i = from; i < steps.length; i++) {
    const result = steps[i]!(ctx)
    if (result instanceof Promise) return result.then((answer) => answer ?? runSteps(steps, i + 1, ctx)) as R
    if (result) return result
  }
  return undefined
}

const orNull = <T>(steps: T[]): T[] | null => (steps.length > 0 ? steps : null)

/** Compiles for an endpoint of `proto`: TCP and TLS endpoints see no HTTP, so HTTP phases are refused. */
export function compilePolicy (document: PolicyDocument, proto: 'http' | 'tcp' | 'tls' = 'http', options: CompileOptions = {}): CompiledPolicy {
  if (proto !== 'http' && (document.on_http_request?.length || document.on_http_response?.length)) {
    throw new PortholeError('PH_1008', `on_http_request/on_http_response: a ${proto} endpoint carries no HTTP`)
  }
  const connect = compilePhase<ConnectContext, Denial | undefined>('on_tcp_connect', document.on_tcp_connect, connectStep, connectVars, (ctx) => ctx.endpointHost, options)
  const request = compilePhase('on_http_request', document.on_http_request, (action) => requestStep(action, options), requestVars, (ctx) => ctx.endpointHost, options)
  const response = compilePhase('on_http_response', document.on_http_response, responseStep, responseVars, (ctx) => ctx.request.endpointHost, options)
  return {
    onTcpConnect: orNull(connect),
    onHttpRequest: orNull(request),
    onHttpResponse: orNull(response as ResponseStep[]),
    needsBody: (document.on_http_request ?? []).some((rule) => rule.actions.some((action) => action.type === 'verify-webhook')),
  }
}
