// How ngrok's JSON is read: the clients disagree on key casing (ngrok-rust writes `AuthToken`, ngrok-go
// `Authtoken`, Go's decoder reads any casing), so every object is matched to its schema's keys ignoring case
// before zod checks it. Two keys that differ only in case are refused (which one meant what is unknowable).
// A schema in `strict` mode (Bind options) refuses unknown keys, except those left at a zero value (null, "",
// false, 0, []): they ask for nothing, and SDKs send every field they know. Errors name the field and its value;
// values of secret-looking fields are never shown.
import { z } from 'zod'
import { PortholeError, type ErrorCode } from '../../core/errors.js'

const SECRET = /token|secret|password|cookie|key|cert/i

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** A value that asks for nothing: what an SDK sends for an option it knows and the user did not set. */
export function isZeroValue (value: unknown): boolean {
  return value === null || value === '' || value === false || value === 0 || (Array.isArray(value) && value.length === 0)
}

/** The object with its keys renamed to the schema's casing; unknown keys keep theirs (dropped if zero in strict mode). */
function canonical (input: unknown, keys: ReadonlyMap<string, string>, strict: boolean, ctx: z.RefinementCtx): unknown {
  if (!isPlainObject(input)) return input
  const out: Record<string, unknown> = {}
  // defineProperty, not assignment: a JSON key "__proto__" must stay an own (unknown) key, never a prototype
  const set = (key: string, value: unknown): void => { Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true }) }
  for (const [key, value] of Object.entries(input)) {
    const name = keys.get(key.toLowerCase())
    if (name === undefined) {
      if (!(strict && isZeroValue(value))) set(key, value)
      continue
    }
    if (Object.hasOwn(out, name)) {
      ctx.addIssue({ code: 'custom', message: 'given twice (keys differing only in case)', path: [name], input: undefined })
      continue
    }
    set(name, value)
  }
  return out
}

/** A zod object whose keys match case-insensitively. `strict`: unknown non-zero keys are an error. */
export function wireObject<T extends z.ZodRawShape> (shape: T, options: { strict?: boolean } = {}) {
  const keys = new Map(Object.keys(shape).map((key) => [key.toLowerCase(), key]))
  const strict = options.strict === true
  return z.preprocess((input, ctx) => canonical(input, keys, strict, ctx), strict ? z.strictObject(shape) : z.object(shape))
}

/** An optional field that a Go client may also send as null (a nil slice, map or pointer): both become `fallback`. */
export function orNull<T extends z.ZodType> (schema: T, fallback: z.output<T>) {
  return schema.nullable().optional().transform((value) => (value ?? fallback) as z.output<T>)
}

/** A field path as errors show it: Opts.BasicAuth.credentials[0].username. */
export function pathText (path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${/^[\w-]+$/.test(String(part)) ? String(part) : JSON.stringify(String(part))}`)).join('').replace(/^\./, '')
}

/** A value as errors quote it: JSON, cut short; hidden when the field looks secret. */
export function shownValue (path: readonly PropertyKey[], value: unknown): string {
  if (path.some((part) => typeof part === 'string' && SECRET.test(part))) return '(hidden)'
  const text = value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function issueText (issue: z.core.$ZodIssue): { code: ErrorCode, detail: string } {
  const input = (issue as { input?: unknown }).input
  if (issue.code === 'unrecognized_keys') {
    return { code: 'PH_1074', detail: issue.keys.map((key) => pathText([...issue.path, key])).join(', ') }
  }
  const where = pathText(issue.path) || 'message'
  switch (issue.code) {
    case 'invalid_type':
      return { code: 'PH_1070', detail: `${where}: want ${issue.expected === 'array' || issue.expected === 'object' ? 'an' : 'a'} ${issue.expected}, not ${shownValue(issue.path, input)}` }
    case 'too_big': case 'too_small':
      return { code: 'PH_1070', detail: `${where}: ${shownValue(issue.path, input)}: ${issue.message}` }
    default:
      return { code: 'PH_1070', detail: `${where}: ${issue.message}${input === undefined ? '' : ` (${shownValue(issue.path, input)})`}` }
  }
}

/** Parses `value` with `schema`, or throws PH_1070 (malformed) / PH_1074 (unknown option) naming the field. */
export function parseWire<T extends z.ZodType> (schema: T, value: unknown, prefix: readonly PropertyKey[] = []): z.output<T> {
  const result = schema.safeParse(value, { reportInput: true })
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  const { code, detail } = issueText({ ...issue, path: [...prefix, ...issue.path] } as z.core.$ZodIssue)
  throw new PortholeError(code, detail)
}
