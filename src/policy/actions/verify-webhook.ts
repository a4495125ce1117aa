// verify-webhook: the request must carry a valid signature from the named provider (policy/webhooks),
// else 403 PH_3105 (or, with enforce: false, it goes on). Needs the whole body, which the edge then
// buffers (bounded) before running the request phase for this endpoint.
import { PortholeError } from '../../core/errors.js'
import type { VerifyWebhookAction } from '../document.js'
import type { RequestStep } from '../compiled.js'
import { checkWebhookConfig, verifyWebhook, webhookOptions } from '../webhooks/index.js'

export function compileVerifyWebhook (action: VerifyWebhookAction, now: () => number = Date.now): RequestStep {
  let config
  try {
    config = checkWebhookConfig(action.config)
  } catch (error) {
    throw new PortholeError('PH_1008', `config.${(error as Error).message}`)
  }
  const options = webhookOptions(config)
  return (ctx) => {
    const host = ctx.headers.host
    const result = verifyWebhook(config.provider, {
      method: ctx.method,
      // The URL the provider called (Twilio signs it): the public scheme, Host as sent, and path.
      url: `${ctx.protocol}://${typeof host === 'string' ? host : ctx.host}${ctx.path}`,
      headers: ctx.headers,
      body: ctx.body ?? Buffer.alloc(0),
      secret: config.secret,
      now: now(),
    }, options)
    if (result.ok || !config.enforce) return undefined
    return { code: 'PH_3105' }
  }
}
