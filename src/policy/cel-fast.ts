// Fast paths for the commonest CEL shapes in traffic policies: a variable path (`conn.client_ip`, the whole of
// most `${...}` templates) and a path compared with a literal (`req.method == 'GET'`, `res.status_code != 200`).
// They read the very variable objects the CEL program would (policy/cel.ts), skipping @bufbuild/cel's
// per-evaluation work (qualified-name and type-registry lookups, a Map wrapper per access). Only a plain value
// (string, int, bool, double) of the expected type takes the fast path; anything else (a missing variable or
// key, a list, a map, a timestamp, a type mismatch) is handed to the CEL program, so the answer is always the
// one CEL gives.
import type { parse } from '@bufbuild/cel'

type Expr = ReturnType<typeof parse>['expr']

type Program = (vars: Record<string, unknown>) => unknown

/** `a.b.c` as ['a', 'b', 'c'], or null when `expr` is anything but identifiers and field selections. */
function pathOf (expr: Expr): string[] | null {
  const path: string[] = []
  let node: Expr = expr
  for (;;) {
    const kind = node.exprKind
    if (kind.case === 'identExpr') {
      path.unshift(kind.value.name)
      return path
    }
    if (kind.case !== 'selectExpr' || kind.value.testOnly || kind.value.operand === undefined) return null
    path.unshift(kind.value.field)
    node = kind.value.operand
  }
}

/** A variable name CEL may read for a path, and where in the path the field accesses after it begin. */
export interface Candidate { readonly name: string, readonly from: number }

/**
 * The value of `a.b.c` read as @bufbuild/cel reads it, when every step is a plain field; undefined otherwise.
 * CEL tries the most qualified variable name first (`a.b.c`, then `a.b` and field c, then `a` and fields b, c)
 * and takes the first variable that exists; `candidates` holds those names, longest first.
 */
export function resolvePath (vars: Record<string, unknown>, path: readonly string[], candidates: readonly Candidate[] = candidatesOf(path)): unknown {
  for (const { name, from } of candidates) {
    let value: unknown = vars[name] // as @bufbuild/cel's ObjectActivation reads a variable
    if (value === undefined) continue
    for (let i = from; i < path.length; i++) {
      if (value instanceof Map) {
        value = value.get(path[i]!)
      } else if (value !== null && typeof value === 'object' && value.constructor === Object) {
        value = Object.hasOwn(value, path[i]!) ? (value as Record<string, unknown>)[path[i]!] : undefined
      } else {
        return undefined
      }
    }
    return value
  }
  return undefined
}

/**
 * ['a', 'b', 'c'] -> a.b.c, a.b, a, leaving out dotted names not in `declared` (the dotted variables there
 * are): a lookup of those finds nothing, in CEL as here, and would cost a miss on every evaluation.
 */
export function candidatesOf (path: readonly string[], declared?: ReadonlySet<string>): Candidate[] {
  const candidates: Candidate[] = []
  for (let i = path.length; i > 0; i--) {
    const name = path.slice(0, i).join('.')
    if (i === 1 || declared === undefined || declared.has(name)) candidates.push({ name, from: i })
  }
  return candidates
}

const plain = (value: unknown): boolean => {
  const type = typeof value
  return type === 'string' || type === 'bigint' || type === 'boolean' || type === 'number'
}

/** A literal of a type whose CEL equality is JavaScript's `===`: string, int, bool. */
function literalOf (expr: Expr): { value: string | bigint | boolean } | null {
  if (expr.exprKind.case !== 'constExpr') return null
  const constant = expr.exprKind.value.constantKind
  switch (constant.case) {
    case 'stringValue': case 'int64Value': case 'boolValue': return { value: constant.value }
    default: return null
  }
}

/** A faster program equivalent to `slow` for the shape of `expr`, or null when it has no fast path.
 *  `declared`: every dotted variable name the variables may hold (req.url, req.url.path, ...). */
export function fastProgram (expr: Expr | undefined, slow: Program, declared?: ReadonlySet<string>): Program | null {
  if (expr === undefined) return null
  const path = pathOf(expr)
  if (path !== null) {
    const candidates = candidatesOf(path, declared)
    return (vars) => {
      const value = resolvePath(vars, path, candidates)
      return plain(value) ? value : slow(vars)
    }
  }
  if (expr.exprKind.case !== 'callExpr') return null
  const call = expr.exprKind.value
  if ((call.function !== '_==_' && call.function !== '_!=_') || call.target !== undefined || call.args.length !== 2) return null
  const [left, right] = call.args as [Expr, Expr]
  const leftPath = pathOf(left)
  const operandPath = leftPath ?? pathOf(right)
  const literal = leftPath !== null ? literalOf(right) : literalOf(left)
  if (operandPath === null || literal === null) return null
  const expected = literal.value
  const type = typeof expected
  const equal = call.function === '_==_'
  const candidates = candidatesOf(operandPath, declared)
  return (vars) => {
    const value = resolvePath(vars, operandPath, candidates)
    if (typeof value !== type) return slow(vars)
    return equal ? value === expected : value !== expected
  }
}
