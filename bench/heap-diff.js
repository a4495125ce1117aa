// What N more of something (idle tunnels, sessions) hold in the V8 heap: the difference between two heap snapshots
// (`node bench/scale.js --only=idle-memory --heap-snapshots` writes them, each after a full GC), grouped by what
// DevTools calls the constructor (object class, closure name, "(system)", strings, arrays...) and divided by N.
// Self sizes only (no retained sizes): each byte is counted once, where it lives. Native memory that V8 does not
// own (socket buffers, OpenSSL contexts, malloc arenas) is not in a heap snapshot: compare with the RSS figure.
//   node bench/heap-diff.js BASE.heapsnapshot AFTER.heapsnapshot N [rows=40]
import { readFileSync } from 'node:fs'

const [baseFile, afterFile, nArg, rowsArg = '40'] = process.argv.slice(2)
if (!baseFile || !afterFile || !nArg) {
  process.stderr.write('usage: node bench/heap-diff.js BASE.heapsnapshot AFTER.heapsnapshot N [rows]\n')
  process.exit(2)
}
const n = Number(nArg)

/** Self size and count per group ("type: name" for the kinds whose names are classes or closures). */
function summarise (file) {
  const snapshot = JSON.parse(readFileSync(file, 'utf8'))
  const meta = snapshot.snapshot.meta
  const fields = meta.node_fields
  const types = meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const { nodes, strings } = snapshot
  const groups = new Map()
  let total = 0
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]]
    const size = nodes[i + sizeAt]
    let name = strings[nodes[i + nameAt]]
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(strings)'
    else if (type === 'number' || type === 'hidden' || type === 'code') name = `(${type})`
    else if (type === 'closure') name = `closure ${name || '(anonymous)'}`
    else if (type === 'array') name = `(array) ${name.length > 40 ? name.slice(0, 40) : name}`
    else if (type === 'native') name = `native ${name.length > 50 ? name.slice(0, 50) : name}`
    else if (type === 'object' && name.startsWith('{')) name = 'Object (literal)'
    const entry = groups.get(name) ?? { size: 0, count: 0 }
    entry.size += size
    entry.count++
    groups.set(name, entry)
    total += size
  }
  return { groups, total }
}

const base = summarise(baseFile)
const after = summarise(afterFile)
const rows = []
for (const [name, entry] of after.groups) {
  const before = base.groups.get(name) ?? { size: 0, count: 0 }
  rows.push({ name, bytes: (entry.size - before.size) / n, count: (entry.count - before.count) / n })
}
for (const [name, entry] of base.groups) if (!after.groups.has(name)) rows.push({ name, bytes: -entry.size / n, count: -entry.count / n })
rows.sort((a, b) => b.bytes - a.bytes)
const totalPer = (after.total - base.total) / n
process.stdout.write(`V8 heap after a full GC: ${(base.total / 2 ** 20).toFixed(1)} -> ${(after.total / 2 ** 20).toFixed(1)} MiB, ${totalPer.toFixed(0)} bytes per each of ${n}\n`)
process.stdout.write(`${'bytes/N'.padStart(9)} ${'count/N'.padStart(8)}  group\n`)
for (const row of rows.slice(0, Number(rowsArg))) {
  process.stdout.write(`${row.bytes.toFixed(0).padStart(9)} ${row.count.toFixed(2).padStart(8)}  ${row.name}\n`)
}
