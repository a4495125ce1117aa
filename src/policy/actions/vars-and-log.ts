// set-vars, log and close-connection: actions that answer nothing themselves.
// set-vars stores values (strings may interpolate `${}`) that later expressions read as `vars.NAME`.
// log publishes one record on the diagnostics channel `porthole:policy:log`; the gateway subscribes and
// writes it to its pino log. A channel rather than a logger handed to the compiler: policies are compiled
// where the SSH session binds (no logger in reach there), a channel costs nothing without subscribers, and
// the inspector or metrics can subscribe to the same records later.
// close-connection drops the client connection without a response.
import diagnostics from 'node:diagnostics_channel'
import { PortholeError } from '../../core/errors.js'
import { actionResults, compileTemplate } from '../cel.js'
import type { LogAction, SetVarsAction } from '../document.js'
import type { ConnectContext, Denial } from '../compiled.js'

export const policyLogChannel = diagnostics.channel('porthole:policy:log')

/** What a `log` action publishes. */
export interface PolicyLogRecord {
  readonly endpoint: string
  readonly phase: string
  readonly metadata: Record<string, unknown>
}

type Vars = () => Record<string, unknown>
type Value = string | number | boolean | bigint | ((vars: Record<string, unknown>) => string)

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

function compileValue (value: unknown, where: string): Value {
  if (typeof value === 'string') return compileTemplate(value, where)
  // CEL integers are 64-bit ints (bigint here): `vars.n == 3` must hold for a YAML `n: 3`.
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : value
  if (typeof value === 'boolean') return value
  throw new PortholeError('PH_1008', `${where}: want a string, number or boolean`)
}

const render = (value: Value, vars: Vars): unknown => (typeof value === 'function' ? value(vars()) : value)

/** set-vars for any phase: `ctx` is the context whose action results hold the variables. */
export function compileSetVars (action: SetVarsAction): (ctx: ConnectContext, vars: Vars) => void {
  const entries: [string, Value][] = []
  action.config.vars.forEach((map, i) => {
    for (const [name, value] of Object.entries(map)) {
      if (!NAME.test(name)) throw new PortholeError('PH_1008', `vars[${i}]: ${JSON.stringify(name)} is not a variable name (letters, digits, _)`)
      entries.push([name, compileValue(value, `vars[${i}].${name}`)])
    }
  })
  return (ctx, vars) => {
    const store = actionResults(ctx).vars
    for (const [name, value] of entries) store[name] = render(value, vars)
  }
}

function compileMetadata (value: unknown, where: string): unknown {
  if (typeof value === 'string') return compileTemplate(value, where)
  if (Array.isArray(value)) return value.map((item, i) => compileMetadata(item, `${where}[${i}]`))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, compileMetadata(v, `${where}.${k}`)]))
  }
  return value
}

function renderMetadata (value: unknown, vars: Vars): unknown {
  if (typeof value === 'function') return (value as (v: Record<string, unknown>) => string)(vars())
  if (Array.isArray(value)) return value.map((item) => renderMetadata(item, vars))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderMetadata(v, vars)]))
  }
  return value
}

export function compileLog (action: LogAction, phase: string): (endpoint: string, vars: Vars) => void {
  const metadata = compileMetadata(action.config.metadata, 'metadata')
  return (endpoint, vars) => {
    if (!policyLogChannel.hasSubscribers) return
    const record: PolicyLogRecord = { endpoint, phase, metadata: renderMetadata(metadata, vars) as Record<string, unknown> }
    policyLogChannel.publish(record)
  }
}

export const CLOSE: Denial = { close: true }
