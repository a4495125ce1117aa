// Summarises a Linux `perf` CPU profile of the gateway by where its CPU goes: main thread vs the GC and libuv
// threads, kernel vs user, which system call the kernel time is spent under, and each JS module's and
// function's inclusive share. `--cpu-prof` (top-functions.js) samples wall time, so on a shared box a system
// call that wakes another process (a loopback write to wrk) looks far costlier than it is; perf's cpu-clock
// samples count only time on a CPU, which is what the bench's utime+stime rows measure.
//   NODE_OPTIONS=--perf-basic-prof BENCH_DURATION=10s BENCH_ROUNDS=1 node bench/run.js --only=porthole &
//   perf record -F 1999 -g -p GATEWAY_PID -o /tmp/gw.data -- sleep 4      # during the phase to look at
//   perf script -i /tmp/gw.data -F tid,ip,sym,dso | node bench/perf-shares.js [GATEWAY_PID] [N=40]
import { createInterface } from 'node:readline'

const [pidArg, countArg = '40'] = process.argv.slice(2)
const count = Number(countArg)
const samples = []
let current = null
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line.trim() === '') {
    if (current) samples.push(current)
    current = null
  } else if (!line.startsWith('\t')) {
    current = { tid: line.trim().split(/\s+/)[0], frames: [] }
  } else if (current) {
    const match = /^\s*[0-9a-f]+ (.*) \((.*)\)$/.exec(line)
    if (match) current.frames.push({ sym: match[1], dso: match[2] })
  }
}
if (current) samples.push(current)
if (samples.length === 0) {
  process.stderr.write('no samples: pipe `perf script -F tid,ip,sym,dso` in\n')
  process.exit(2)
}
const mainTid = pidArg ?? samples[0].tid
const short = (file) => file.replace(/.*\/node_modules\//, '').replace(/.*\/dist\//, 'dist/').replace(/^(undici|ssh2)\/lib\//, '$1/')
/** A frame's module: a JS file, 'kernel', or the shared object it ran in. */
function moduleOf ({ sym, dso }) {
  if (dso.includes('kernel')) return 'kernel'
  const js = /^JS:[*~^]?\S* (\S+?):\d+:\d+$/.exec(sym)
  if (js) return short(js[1])
  return sym.startsWith('JS:') ? '(js, other)' : dso.split('/').pop()
}
const tally = () => new Map()
const add = (map, key) => map.set(key, (map.get(key) ?? 0) + 1)
const threads = tally(); const self = tally(); const modules = tally(); const functions = tally(); const syscalls = tally()
for (const { tid, frames } of samples) {
  if (tid !== mainTid) { add(threads, 'other threads (GC helpers, libuv pool)'); continue }
  add(threads, 'main thread')
  if (frames.length === 0) continue
  add(self, moduleOf(frames[0]))
  if (frames[0].dso.includes('kernel')) {
    const caller = frames.find((f) => !f.dso.includes('kernel'))
    if (caller) add(syscalls, caller.sym.slice(0, 60))
  }
  const seenModules = new Set(); const seenFunctions = new Set()
  for (const frame of frames) {
    const mod = moduleOf(frame)
    if (frame.sym.startsWith('JS:') && !seenModules.has(mod)) { seenModules.add(mod); add(modules, mod) }
    if (frame.sym.startsWith('JS:') && !seenFunctions.has(frame.sym)) { seenFunctions.add(frame.sym); add(functions, frame.sym.replace(/^JS:/, '').replace(/file:\/\/\/?\S*?\/dist\//, 'dist/').replace(/\S*\/node_modules\//, '')) }
  }
}
const print = (title, map, n = count) => {
  console.log(`\n${title}`)
  for (const [key, value] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${(100 * value / samples.length).toFixed(1).padStart(6)}%  ${key}`)
}
console.log(`${samples.length} samples, main thread ${mainTid}; shares of all samples`)
print('threads', threads)
print('self time by module (main thread; "node" is its C++ and V8 builtins)', self, 20)
print('kernel time by the user-space frame that entered it', syscalls, 10)
print('inclusive, by JS module (main thread)', modules, 30)
print('inclusive, by JS function (main thread)', functions)
