// Builds the ServerConfig from its sources, later ones winning: embedded defaults < YAML file (--config) <
// environment PORTHOLE_* < command-line flags. Every source uses the same kebab-case names
// (`ssh-addr:` in YAML, PORTHOLE_SSH_ADDR in env, --ssh-addr on the command line).
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { PortholeError } from '../core/errors.js'
import { configSchema, finishConfig, isLoopback, type ServerConfig } from './schema.js'

export const CONFIG_KEYS = Object.keys(configSchema.shape) as (keyof typeof configSchema.shape)[]
const REPEATABLE = new Set<string>(['authorizedKeys', 'eventsWebhook'])
const BOOLEAN = new Set<string>(['allowAnonymous', 'policyPrivateUrls', 'sshLegacyAlgorithms', 'inspect', 'eventsLog', 'fastH1'])
/** Settings that are maps: a mapping in YAML, a JSON object in the environment and on the command line. */
const JSON_VALUED = new Set<string>(['oauthProviders'])

export const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const camel = (key: string): string => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())

type Source = Record<string, unknown>

function fromYaml (file: string): Source {
  let document: unknown
  try {
    document = parseYaml(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new PortholeError('PH_2001', `${file}: ${(error as Error).message.split('\n')[0]}`)
  }
  if (document === null || document === undefined) return {}
  if (typeof document !== 'object' || Array.isArray(document)) throw new PortholeError('PH_2001', `${file}: want a mapping of settings`)
  const out: Source = {}
  for (const [key, value] of Object.entries(document)) {
    if (key === 'config') throw new PortholeError('PH_2001', `${file}: a config file cannot name another config file`)
    out[camel(key)] = REPEATABLE.has(camel(key)) && typeof value === 'string' ? [value] : value
  }
  return out
}

function fromEnv (env: NodeJS.ProcessEnv): Source {
  const out: Source = {}
  for (const key of CONFIG_KEYS) {
    const value = env[`PORTHOLE_${kebab(key).replace(/-/g, '_').toUpperCase()}`]
    if (value === undefined || value === '') continue
    if (BOOLEAN.has(key)) out[key] = /^(1|true|yes|on)$/i.test(value)
    else if (REPEATABLE.has(key)) out[key] = value.split(',').map((s) => s.trim()).filter(Boolean)
    else out[key] = value
  }
  return out
}

function parseJson (key: string, text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new PortholeError('PH_2001', `${kebab(key)}: want a JSON object (${(error as Error).message})`)
  }
}

function issueLine (issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).map(kebab).join('.')
  if (issue.code === 'unrecognized_keys') return `${path === '' ? '' : `${path}: `}unknown setting ${issue.keys.map((k) => kebab(String(k))).join(', ')}`
  return `${path}: ${issue.message}`
}

export interface LoadOptions {
  /** Whether the identity store in this data dir has keys or authtokens (then a public listener may start). */
  credentialsIn?: (dataDir: string) => boolean
}

/** Loads, merges and validates. `flags` holds camelCase keys from the command line (config: the YAML file). */
export function loadConfig (flags: Source = {}, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): ServerConfig {
  const { config: file, ...flagSettings } = flags
  const configFile = (typeof file === 'string' ? file : undefined) ?? env.PORTHOLE_CONFIG
  const merged: Source = { ...(configFile ? fromYaml(configFile) : {}), ...fromEnv(env), ...flagSettings }
  for (const key of JSON_VALUED) if (typeof merged[key] === 'string') merged[key] = parseJson(key, merged[key])
  const parsed = configSchema.safeParse(merged)
  if (!parsed.success) throw new PortholeError('PH_2001', parsed.error.issues.map(issueLine).join('; '))
  const config = finishConfig(parsed.data)
  const publicListeners = [config.sshAddr, config.httpAddr, config.httpsAddr, ...(config.agentAddr ? [config.agentAddr] : [])].filter((a) => !isLoopback(a.host))
  if (publicListeners.length > 0 && config.authorizedKeys.length === 0 && !config.allowAnonymous && !options.credentialsIn?.(config.dataDir)) {
    const where = publicListeners.map((a) => `${a.host}:${a.port}`).join(', ')
    throw new PortholeError('PH_2002', `listening on ${where} (not loopback) with no --authorized-keys; add keys or pass --allow-anonymous`)
  }
  return config
}
