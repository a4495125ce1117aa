// Summarises a V8 .cpuprofile (from `node bench/run.js --cpu-prof`): the functions with the most self time,
// with file:line, then self time per file, so a profile can be read without opening DevTools.
//   node bench/top-functions.js FILE.cpuprofile [N=25] [--window=FROM-TO]
// --window keeps only the samples taken FROM..TO seconds after the profile started (bench/run.js records the
// wrk and /big phases of each round in seconds since porthole started, which is within ~0.1 s of that).
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const args = process.argv.slice(2)
const window = args.find((a) => a.startsWith('--window='))?.slice('--window='.length).split('-').map(Number) ?? null
const [file, count = '25'] = args.filter((a) => !a.startsWith('--'))
if (!file || (window && (window.length !== 2 || window.some(Number.isNaN)))) {
  process.stderr.write('usage: node bench/top-functions.js FILE.cpuprofile [N] [--window=FROM-TO]\n')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8'))

/** The sample node ids taken inside the window, and the ms of wall time they cover. */
function pickSamples () {
  if (!window) return { ids: profile.samples, spanMs: (profile.endTime - profile.startTime) / 1000 }
  let t = 0
  const ids = []
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] / 1e6
    if (t >= window[0] && t <= window[1]) ids.push(profile.samples[i])
  }
  return { ids, spanMs: Math.max(0, (Math.min(window[1], t) - window[0]) * 1000) }
}
const { ids: samples, spanMs: totalMs } = pickSamples()
const msPerSample = totalMs / Math.max(samples.length, 1)

/** Where a call frame lives, relative to the working directory for project files. */
function location ({ url, lineNumber }) {
  if (!url) return ''
  const path = url.startsWith('file://') ? relative(process.cwd(), fileURLToPath(url)) : url
  return `${path}:${lineNumber + 1}`
}

const hits = new Map(profile.nodes.map((node) => [node.id, 0]))
for (const id of samples) hits.set(id, hits.get(id) + 1)

const byFunction = new Map()
const byFile = new Map()
for (const node of profile.nodes) {
  const samples = hits.get(node.id)
  if (!samples) continue
  const frame = node.callFrame
  const key = `${frame.functionName || '(anonymous)'}\t${location(frame)}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + samples)
  const where = frame.url ? location({ ...frame, lineNumber: -1 }).replace(/:0$/, '') : frame.functionName
  byFile.set(where, (byFile.get(where) ?? 0) + samples)
}

const totalSamples = samples.length

function print (title, map, n, label) {
  process.stdout.write(`\n${title}\n${'self ms'.padStart(9)} ${'self %'.padStart(7)}  ${label}\n`)
  const rows = [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
  for (const [key, samples] of rows) {
    const [name, where = ''] = key.split('\t')
    const ms = samples * msPerSample
    process.stdout.write(`${ms.toFixed(0).padStart(9)} ${(100 * samples / totalSamples).toFixed(1).padStart(6)}%  ${name}${where ? `  ${where}` : ''}\n`)
  }
}

const idle = [...byFunction.entries()].filter(([key]) => key.startsWith('(idle)')).reduce((sum, [, n]) => sum + n, 0)
process.stdout.write(`${file}${window ? ` window ${window[0]}-${window[1]} s` : ''}: ${totalMs.toFixed(0)} ms, ${totalSamples} samples, ` +
  `busy (not idle) ${(100 * (1 - idle / Math.max(totalSamples, 1))).toFixed(1)}%\n`)
print(`top ${count} functions by self time`, byFunction, Number(count), 'function  file:line')
print('top 15 files by self time', byFile, 15, 'file')
