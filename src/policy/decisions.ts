// Policy decisions for metrics: which action refused, answered or closed a request or connection. A step of an
// action that can stop traffic is wrapped once at bind time; per request the wrapper costs one call and a
// subscriber check, and builds nothing while nobody listens (observe/channels.ts).
import type { ErrorCode } from '../core/errors.js'
import { policyDecisionChannel, type PolicyDecisionObserved } from '../observe/channels.js'
import type { Denial } from './compiled.js'

/** Actions whose step may answer instead of passing the request on. */
const DECIDING = new Set<string>(['deny', 'restrict-ips', 'basic-auth', 'jwt-validation', 'oauth', 'openid-connect', 'oidc',
  'verify-webhook', 'rate-limit', 'circuit-breaker', 'close-connection', 'custom-response', 'redirect'])

type Phase = 'on_tcp_connect' | 'on_http_request' | 'on_http_response'

/** What a denial did, and its catalogue code (a deny with its own status carries it as a header). */
export function decisionOf (denial: Denial): Pick<PolicyDecisionObserved, 'result' | 'code'> {
  if ('close' in denial) return { result: 'closed', code: undefined }
  if ('code' in denial) return { result: 'refused', code: denial.code }
  const code = denial.response.headers['porthole-error-code']
  return typeof code === 'string' ? { result: 'refused', code: code as ErrorCode } : { result: 'answered', code: undefined }
}

function publish (action: string, phase: 'on_tcp_connect' | 'on_http_request', denial: unknown): void {
  if (!denial || !policyDecisionChannel.hasSubscribers) return
  policyDecisionChannel.publish({ action, phase, ...decisionOf(denial as Denial) } satisfies PolicyDecisionObserved)
}

/** The step, published on the decision channel when it stops traffic; other actions' steps are returned as they are. */
export function observedStep<C, R> (action: string, phase: Phase, step: (ctx: C) => R): (ctx: C) => R {
  if (phase === 'on_http_response' || !DECIDING.has(action)) return step
  return (ctx) => {
    const result = step(ctx)
    if (!result || !policyDecisionChannel.hasSubscribers) return result
    if (result instanceof Promise) return result.then((denial: unknown) => { publish(action, phase, denial); return denial }) as R
    publish(action, phase, result)
    return result
  }
}
