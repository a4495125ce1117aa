// @bufbuild/cel (with @bufbuild/protobuf, which it runs on), loaded when the first expression is compiled
// rather than when the gateway starts: together ~4 MiB of V8 heap, a fifth of the gateway's, which every full
// GC marks again, in gateways whose endpoints use no expressions too. Loaded synchronously (their CommonJS
// builds) because policies compile synchronously at bind. Every value from them comes through here, so that
// one copy of each library is in use.
import { createRequire } from 'node:module'

export type CelLibrary = typeof import('@bufbuild/cel')
type Protobuf = typeof import('@bufbuild/protobuf')
type ProtobufReflect = typeof import('@bufbuild/protobuf/reflect')
type ProtobufWkt = typeof import('@bufbuild/protobuf/wkt')

const require = createRequire(import.meta.url)
let cel: CelLibrary | null = null
let protobuf: (Protobuf & ProtobufReflect & ProtobufWkt) | null = null

export function celLibrary (): CelLibrary {
  cel ??= require('@bufbuild/cel') as CelLibrary
  return cel
}

/** What CEL's values are made of: messages, reflection and the well-known types (timestamps). */
export function protobufLibrary (): Protobuf & ProtobufReflect & ProtobufWkt {
  protobuf ??= { ...require('@bufbuild/protobuf') as Protobuf, ...require('@bufbuild/protobuf/reflect') as ProtobufReflect, ...require('@bufbuild/protobuf/wkt') as ProtobufWkt }
  return protobuf
}
