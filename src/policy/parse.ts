// Reads a traffic policy document (YAML or JSON, as ngrok accepts them) and checks its shape: phases,
// rules, action types and their config fields. Every error names where it is: on_http_request[0].actions[1]
// .config.status_code. Values inside actions (CIDRs, headers, regexes, expressions) are checked when the
// document is compiled (policy/compile.ts).
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { PortholeError } from '../core/errors.js'
import type { PolicyDocument } from './document.js'

/** A policy arrives on the SSH command line or stdin; bigger than this is refused. */
export const MAX_POLICY_BYTES = 64 * 1024

const headers = z.record(z.string(), z.string())
const status = z.number().int().min(100).max(599)

const action = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('basic-auth'), config: z.strictObject({ credentials: z.array(z.string()).min(1), realm: z.string().optional(), enforce: z.boolean().optional() }) }),
  z.strictObject({ type: z.literal('restrict-ips'), config: z.strictObject({ allow: z.array(z.string()).optional(), deny: z.array(z.string()).optional(), enforce: z.boolean().optional() }) }),
  z.strictObject({ type: z.literal('add-headers'), config: z.strictObject({ headers }) }),
  z.strictObject({ type: z.literal('remove-headers'), config: z.strictObject({ headers: z.array(z.string()).min(1) }) }),
  z.strictObject({ type: z.literal('deny'), config: z.strictObject({ status_code: status.optional() }).optional() }),
  z.strictObject({ type: z.literal('custom-response'), config: z.strictObject({ status_code: status.optional(), body: z.string().optional(), content: z.string().optional(), headers: headers.optional() }) }),
  z.strictObject({ type: z.literal('redirect'), config: z.strictObject({ from: z.string().optional(), to: z.string().min(1), status_code: z.number().int().min(300).max(399).optional(), headers: headers.optional() }) }),
  z.strictObject({ type: z.literal('url-rewrite'), config: z.strictObject({ from: z.string().optional(), to: z.string().min(1) }) }),
  z.strictObject({ type: z.literal('verify-webhook'), config: z.record(z.string(), z.unknown()) }),
  z.strictObject({ type: z.literal('jwt-validation'), config: z.record(z.string(), z.unknown()) }),
  z.strictObject({ type: z.literal('oauth'), config: z.record(z.string(), z.unknown()) }),
  z.strictObject({ type: z.literal('openid-connect'), config: z.record(z.string(), z.unknown()) }),
  z.strictObject({ type: z.literal('oidc'), config: z.record(z.string(), z.unknown()) }),
  z.strictObject({ type: z.literal('compress-response'), config: z.strictObject({ algorithms: z.array(z.enum(['gzip', 'deflate', 'br', 'compress'])).min(1).optional() }).optional() }),
  z.strictObject({
    type: z.literal('rate-limit'),
    config: z.strictObject({
      name: z.string().min(1).max(1023),
      algorithm: z.literal('sliding_window'),
      capacity: z.number().int().min(1).max(2_000_000_000),
      rate: z.string(),
      bucket_key: z.array(z.string()).optional(),
      enforce: z.boolean().optional(),
    }),
  }),
  z.strictObject({
    type: z.literal('circuit-breaker'),
    config: z.strictObject({
      error_threshold: z.number().min(0).max(1).optional(),
      volume_threshold: z.number().int().min(1).max(2_000_000_000).optional(),
      window_duration: z.string().optional(),
      tripped_duration: z.string().optional(),
      num_buckets: z.number().int().min(1).max(128).optional(),
      enforce: z.boolean().optional(),
    }).optional(),
  }),
  z.strictObject({ type: z.literal('close-connection'), config: z.strictObject({}).optional() }),
  z.strictObject({ type: z.literal('log'), config: z.strictObject({ metadata: z.record(z.string(), z.unknown()) }) }),
  z.strictObject({ type: z.literal('set-vars'), config: z.strictObject({ vars: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))).min(1) }) }),
])

const rule = z.strictObject({
  name: z.string().optional(),
  expressions: z.array(z.string()).optional(),
  actions: z.array(action).min(1),
})

const documentSchema = z.strictObject({
  on_tcp_connect: z.array(rule).optional(),
  on_http_request: z.array(rule).optional(),
  on_http_response: z.array(rule).optional(),
})

/** A field name as an error shows it: quoted (JSON) unless plain, so a name holding a newline or
 *  punctuation cannot break the one-line error or disguise where it is. */
const fieldName = (key: PropertyKey): string => (typeof key === 'string' && /^[\w-]+$/.test(key) ? key : JSON.stringify(String(key)))

function pathOf (path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${fieldName(part)}`)).join('').replace(/^\./, '')
}

/** A value as an error quotes it: JSON, cut short. */
function shown (value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/** What is wrong, naming the offending value (`unknown action type "no-such-action"`), never a list of
 *  every value that would do (the list of action types is in the README). */
function issueMessage (issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input
  switch (issue.code) {
    case 'unrecognized_keys': return `unknown field ${issue.keys.map(fieldName).join(', ')}`
    case 'invalid_union': { // the action union: its discriminator, `type`, is what did not match
      const type = input !== null && typeof input === 'object' ? (input as Record<string, unknown>).type : undefined
      return type === undefined ? 'an action needs a type' : `unknown action type ${shown(type)}`
    }
    case 'invalid_type': return `want a${/^[aeiou]/.test(issue.expected) ? 'n' : ''} ${issue.expected}, not ${shown(input)}`
    case 'invalid_value': return `unsupported value ${shown(input)}`
    case 'too_small': case 'too_big': return `${shown(input)}: ${issue.message}`
    default: return issue.message
  }
}

export function parsePolicy (text: string): PolicyDocument {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) throw new PortholeError('PH_1008', `document larger than ${MAX_POLICY_BYTES} bytes`)
  let data: unknown
  try {
    data = parseYaml(text, { maxAliasCount: 100, logLevel: 'error' }) // 'error': a stray tag must not print a process warning on the gateway
  } catch (error) {
    throw new PortholeError('PH_1008', (error as Error).message.split('\n')[0]!)
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new PortholeError('PH_1008', 'want a mapping with on_tcp_connect, on_http_request or on_http_response')
  const result = documentSchema.safeParse(data, { reportInput: true })
  if (!result.success) {
    const issue = result.error.issues[0]!
    throw new PortholeError('PH_1008', `${pathOf(issue.path) || 'document'}: ${issueMessage(issue)}`)
  }
  return result.data as PolicyDocument
}

/** Flag rules first, then the document's, phase by phase. */
export function combinePolicies (first: PolicyDocument, second: PolicyDocument): PolicyDocument {
  const out: PolicyDocument = {}
  for (const phase of ['on_tcp_connect', 'on_http_request', 'on_http_response'] as const) {
    const rules = [...(first[phase] ?? []), ...(second[phase] ?? [])]
    if (rules.length > 0) out[phase] = rules
  }
  return out
}
