// Type-checks a CEL expression of a traffic policy at bind time, against the variables policy/cel.ts declares
// and the functions of its environment. Without this a typo (`req.urll.path`, `startsWit(...)`) is an error at
// every evaluation, which a rule reads as "does not match": a deny rule with a typo denied nothing.
// @bufbuild/cel 0.6 ships no usable checker (its Checker handles constants and identifiers only and is not
// exported), so this walks the parsed AST itself. Overloads come from the environment's own function registry,
// so what is accepted here is what the evaluator can call. A value of unknown type (dyn: map values of vars.*,
// actions.*) is accepted wherever a value is, as CEL's own checker does.
import type { CelEnv, CelType, parse } from '@bufbuild/cel'
import { re2Error } from './regex.js'

type Expr = ReturnType<typeof parse>['expr']

/** The checker's types: CEL's, plus `fields` for the engine's variables (req, conn, ...: maps with known keys). */
export type Type =
  | { readonly k: 'dyn' }
  | { readonly k: 'scalar', readonly name: string } // bool, int, uint, double, string, bytes, null_type, type
  | { readonly k: 'message', readonly name: string } // google.protobuf.Timestamp, google.protobuf.Duration
  | { readonly k: 'list', readonly elem: Type }
  | { readonly k: 'map', readonly key: Type, readonly value: Type }
  | { readonly k: 'fields', readonly name: string, readonly fields: Readonly<Record<string, Type>> }

const DYN: Type = { k: 'dyn' }
const scalar = (name: string): Type => ({ k: 'scalar', name })
export const T = {
  dyn: DYN,
  bool: scalar('bool'),
  int: scalar('int'),
  uint: scalar('uint'),
  double: scalar('double'),
  string: scalar('string'),
  bytes: scalar('bytes'),
  null: scalar('null_type'),
  type: scalar('type'),
  timestamp: { k: 'message', name: 'google.protobuf.Timestamp' } as Type,
  duration: { k: 'message', name: 'google.protobuf.Duration' } as Type,
  list: (elem: Type): Type => ({ k: 'list', elem }),
  map: (key: Type, value: Type): Type => ({ k: 'map', key, value }),
  fields: (name: string, fields: Record<string, Type>): Type => ({ k: 'fields', name, fields }),
}

/** Variable declarations by (possibly dotted) name. */
export type Declarations = ReadonlyMap<string, Type>

/** A problem with an expression, said in a few words (the caller adds where and which expression). */
export class CheckError extends Error {}

export function typeName (type: Type): string {
  switch (type.k) {
    case 'dyn': return 'dyn'
    case 'scalar': return type.name
    case 'message': return type.name === 'google.protobuf.Timestamp' ? 'timestamp' : type.name === 'google.protobuf.Duration' ? 'duration' : type.name
    case 'list': return `list(${typeName(type.elem)})`
    case 'map': return `map(${typeName(type.key)}, ${typeName(type.value)})`
    case 'fields': return type.name
  }
}

function fromCel (type: CelType): Type {
  switch (type.kind) {
    case 'scalar': return type.name === 'dyn' ? DYN : scalar(type.name)
    case 'list': return T.list(fromCel(type.element))
    case 'map': return T.map(fromCel(type.key), fromCel(type.value))
    default: return { k: 'message', name: type.desc?.typeName ?? type.name }
  }
}

/** Whether a value of type `a` may be passed where `b` is expected (dyn on either side always may). */
function assignable (a: Type, b: Type): boolean {
  if (a.k === 'dyn' || b.k === 'dyn') return true
  if (a.k === 'fields') return b.k === 'map' // the engine's variables are maps to the evaluator
  if (a.k !== b.k) return false
  switch (a.k) {
    case 'scalar': case 'message': return a.name === (b as typeof a).name
    case 'list': return assignable(a.elem, (b as typeof a).elem)
    case 'map': return assignable(a.key, (b as typeof a).key) && assignable(a.value, (b as typeof a).value)
  }
}

/** Two branches' types as one: equal types stay, different ones are dyn. */
function join (a: Type, b: Type): Type {
  return typeName(a) === typeName(b) ? a : DYN
}

const TYPE_NAMES = new Set(['bool', 'int', 'uint', 'double', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn',
  'google.protobuf.Timestamp', 'google.protobuf.Duration'])

interface Overload { readonly target: Type | undefined, readonly args: readonly Type[], readonly result: Type }

/** The checker of one environment and set of variables; `check` is pure and may be called for many expressions. */
export class Checker {
  readonly #overloads = new Map<string, Overload[]>()
  readonly #declared: Declarations

  constructor (env: CelEnv, declared: Declarations) {
    for (const func of env.funcs) {
      const list = this.#overloads.get(func.name) ?? []
      list.push({ target: func.target === undefined ? undefined : fromCel(func.target), args: func.arguments.map(fromCel), result: fromCel(func.result) })
      this.#overloads.set(func.name, list)
    }
    this.#declared = declared
  }

  /** The type of `expr`; throws CheckError naming the first problem found. */
  check (expr: Expr | undefined): Type {
    if (expr === undefined) throw new CheckError('empty expression')
    return this.#type(expr, new Map())
  }

  #type (expr: Expr, scope: ReadonlyMap<string, Type>): Type {
    const kind = expr.exprKind
    switch (kind.case) {
      case 'constExpr': return this.#constant(kind.value.constantKind.case)
      case 'identExpr':
      case 'selectExpr': return this.#path(expr, scope)
      case 'callExpr': return this.#call(kind.value.function, kind.value.target, kind.value.args, scope)
      case 'listExpr': {
        const elems = kind.value.elements.map((e) => this.#type(e, scope))
        return T.list(elems.length === 0 ? DYN : elems.reduce(join))
      }
      case 'structExpr': {
        let key: Type | undefined
        let value: Type | undefined
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === 'mapKey') key = key === undefined ? this.#type(entry.keyKind.value, scope) : join(key, this.#type(entry.keyKind.value, scope))
          if (entry.value !== undefined) value = value === undefined ? this.#type(entry.value, scope) : join(value, this.#type(entry.value, scope))
        }
        if (kind.value.messageName !== '') throw new CheckError(`unknown message type "${kind.value.messageName}"`)
        return T.map(key ?? DYN, value ?? DYN)
      }
      case 'comprehensionExpr': {
        const c = kind.value
        const range = this.#type(c.iterRange!, scope)
        const inner = new Map(scope)
        const [first, second] = range.k === 'list'
          ? (c.iterVar2 ? [T.int, range.elem] : [range.elem, DYN])
          : range.k === 'map' ? [range.key, range.value] : range.k === 'fields' ? [T.string, DYN] : range.k === 'dyn' ? [DYN, DYN] : [undefined, undefined]
        if (first === undefined) throw new CheckError(`cannot iterate over a ${typeName(range)}`)
        inner.set(c.iterVar, first)
        if (c.iterVar2) inner.set(c.iterVar2, second!)
        inner.set(c.accuVar, this.#type(c.accuInit!, scope))
        this.#type(c.loopCondition!, inner)
        inner.set(c.accuVar, join(inner.get(c.accuVar)!, this.#type(c.loopStep!, inner)))
        return this.#type(c.result!, inner)
      }
      default: throw new CheckError(`unsupported expression (${String(kind.case)})`)
    }
  }

  #constant (kind: string | undefined): Type {
    switch (kind) {
      case 'boolValue': return T.bool
      case 'int64Value': return T.int
      case 'uint64Value': return T.uint
      case 'doubleValue': return T.double
      case 'stringValue': return T.string
      case 'bytesValue': return T.bytes
      case 'nullValue': return T.null
      case 'timestampValue': return T.timestamp
      case 'durationValue': return T.duration
      default: return DYN
    }
  }

  /** An identifier or a chain of field selections, resolved as CEL resolves names: a comprehension variable
   *  first, then the longest declared (dotted) name, then field by field. */
  #path (expr: Expr, scope: ReadonlyMap<string, Type>): Type {
    const path: string[] = []
    let node: Expr = expr
    let testOnly = false
    for (;;) {
      const kind = node.exprKind
      if (kind.case === 'identExpr') {
        path.unshift(kind.value.name)
        break
      }
      if (kind.case !== 'selectExpr' || kind.value.operand === undefined) {
        // a selection on something else (a call, an index): its type, then the fields.
        const base = this.#type(node, scope)
        return this.#select(base, path, testOnly, '(expression)')
      }
      if (node === expr) testOnly = kind.value.testOnly
      else if (kind.value.testOnly) return this.#type(node, scope) // has() inside a path: a bool
      path.unshift(kind.value.field)
      node = kind.value.operand
    }
    const local = scope.get(path[0]!)
    if (local !== undefined) return this.#select(local, path.slice(1), testOnly, path[0]!)
    for (let i = path.length; i > 0; i--) {
      const name = path.slice(0, i).join('.')
      const declared = this.#declared.get(name)
      if (declared !== undefined) return this.#select(declared, path.slice(i), testOnly, name)
      if (i === path.length && !testOnly && TYPE_NAMES.has(name)) return T.type
    }
    throw new CheckError(`unknown variable "${path[0]}"`)
  }

  #select (base: Type, fields: readonly string[], testOnly: boolean, name: string): Type {
    let type = base
    let at = name
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i]!
      switch (type.k) {
        case 'dyn': return testOnly && i === fields.length - 1 ? T.bool : DYN
        case 'map': type = type.value; break
        case 'fields': {
          const next = type.fields[field]
          if (next === undefined) throw new CheckError(`unknown field "${field}" of ${at}`)
          type = next
          break
        }
        default: throw new CheckError(`${at} is a ${typeName(type)}: it has no field "${field}"`)
      }
      at = `${at}.${field}`
    }
    return testOnly ? T.bool : type
  }

  #call (name: string, target: Expr | undefined, args: readonly Expr[], scope: ReadonlyMap<string, Type>): Type {
    const self = target === undefined ? undefined : this.#type(target, scope)
    const types = args.map((arg) => this.#type(arg, scope))
    switch (name) {
      case '_&&_': case '_||_': case '@not_strictly_false':
        for (const [i, type] of types.entries()) if (!assignable(type, T.bool)) throw new CheckError(`${OPERATORS[name] ?? name} needs bools, operand ${i + 1} is a ${typeName(type)}`)
        return T.bool
      case '_?_:_':
        if (!assignable(types[0]!, T.bool)) throw new CheckError(`the condition of ?: is a ${typeName(types[0]!)}, not a bool`)
        return join(types[1]!, types[2]!)
      case '_[_]': return this.#index(types[0]!, types[1]!, args[1]!)
    }
    const overloads = this.#overloads.get(name)
    if (overloads === undefined) throw new CheckError(`unknown function "${name}"`)
    const matching = overloads.filter((o) => (o.target === undefined) === (self === undefined) &&
      (o.target === undefined || assignable(self!, o.target)) && o.args.length === types.length && o.args.every((arg, i) => assignable(types[i]!, arg)))
    if (matching.length === 0) {
      const shown = `${self === undefined ? '' : `${typeName(self)}.`}${OPERATORS[name] ?? name}(${types.map(typeName).join(', ')})`
      throw new CheckError(`no function ${shown}`)
    }
    if (name === 'matches' && args[0]?.exprKind.case === 'constExpr' && args[0].exprKind.value.constantKind.case === 'stringValue') {
      const pattern = args[0].exprKind.value.constantKind.value
      const error = re2Error(pattern)
      if (error !== undefined) throw new CheckError(`matches(${JSON.stringify(pattern)}): not an RE2 pattern (${error}; RE2 has no backreferences or lookaround)`)
    }
    return matching.map((o) => o.result).reduce(join)
  }

  #index (base: Type, index: Type, arg: Expr): Type {
    switch (base.k) {
      case 'dyn': return DYN
      case 'list':
        if (!assignable(index, T.int) && !assignable(index, T.uint)) throw new CheckError(`a list index is an int, not a ${typeName(index)}`)
        return base.elem
      case 'map': return base.value
      case 'fields': {
        const constant = arg.exprKind.case === 'constExpr' ? arg.exprKind.value.constantKind : undefined
        if (constant?.case !== 'stringValue') return DYN
        const field = base.fields[constant.value]
        if (field === undefined) throw new CheckError(`unknown field "${constant.value}" of ${base.name}`)
        return field
      }
      default: throw new CheckError(`a ${typeName(base)} cannot be indexed`)
    }
  }
}

const OPERATORS: Record<string, string> = {
  '_&&_': '&&', '_||_': '||', '@not_strictly_false': 'all/exists', '_==_': '==', '_!=_': '!=', '_<_': '<', '_<=_': '<=', '_>_': '>', '_>=_': '>=',
  '_+_': '+', '_-_': '-', '_*_': '*', '_/_': '/', '_%_': '%', '!_': '!', '-_': '-', '@in': 'in',
}
