// Label values of the gateway's metrics, from closed sets only: a label that could take a user's name, a host, an
// address or an account would make a series per stranger (Prometheus keeps every series it has seen).
import type { ErrorCode } from '../core/errors.js'

export const TRANSPORTS = ['ssh', 'ngrok'] as const
export const PROTOS = ['http', 'tcp', 'tls'] as const
export const CERT_SOURCES = ['local-ca', 'byo', 'acme'] as const

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'none'

/** 200 -> 2xx; 0 (the connection went before any status) or anything outside 100-599 -> none. */
export function statusClass (status: number): StatusClass {
  if (!Number.isInteger(status) || status < 100 || status > 599) return 'none'
  return `${Math.floor(status / 100)}xx` as StatusClass
}

/** The catalogue code a response was answered with, or '' when the upstream answered. */
export function codeLabel (code: ErrorCode | undefined): string {
  return code ?? ''
}
