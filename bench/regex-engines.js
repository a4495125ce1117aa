// Compares the linear-time regex engines Porthole could run user-supplied patterns on (url-rewrite and
// redirect `from`, CEL `matches`, --ua-filter-*): re2js (pure JS, chosen), re2 (native addon; optional:
// `npm install --no-save re2` to include it) and @bufbuild/re2 (@bufbuild/cel's own boolean-only engine),
// with JavaScript's backtracking RegExp as the baseline. Per engine: compile time per pattern, time per
// match call on representative inputs, and one pathological pattern + input ((a+)+$ against a's and a '!').
//
//   node bench/regex-engines.js        env REGEX_BENCH_ITERATIONS=20000, REGEX_BENCH_EVIL=22 (a's for RegExp)
import { RE2JS } from 're2js'
import { RE2JS as BufRE2 } from '@bufbuild/re2'

const ITERATIONS = Math.max(1, Number(process.env.REGEX_BENCH_ITERATIONS || 20_000))
const EVIL_FOR_BACKTRACKING = Math.max(1, Number(process.env.REGEX_BENCH_EVIL || 22))

let NativeRE2 = null
try {
  NativeRE2 = (await import('re2')).default
} catch {
  console.log('re2 (native) is not installed: `npm install --no-save re2` to include it')
}

/** Patterns as traffic policies write them, each with an input it is tested against. */
const CASES = [
  ['^https?://[^/]+/blog/(.*)$', 'https://app.example.com/blog/2024/06/hello-world?ref=home'],
  ['^http://([^/]+)/(.*)$', 'https://app.example.com/index.html'],
  ['(?i)(curl|wget|python-requests|go-http-client)', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'],
  ['^/api/v[0-9]+/users/[0-9]+$', '/api/v3/users/12345'],
  ['\\.(png|jpe?g|gif|svg|webp)$', '/static/img/logo.svg'],
  ['^Bearer [A-Za-z0-9._~+/-]+=*$', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'],
]

const engines = [
  ['RegExp (backtracking)', (p) => { const r = new RegExp(p.replace(/^\(\?i\)/, ''), p.startsWith('(?i)') ? 'i' : ''); return (s) => r.test(s) }],
  ['re2js', (p) => { const r = RE2JS.compile(p); return (s) => r.test(s) }],
  ['@bufbuild/re2', (p) => { const r = BufRE2.compile(p); return (s) => r.test(s) }],
  ...(NativeRE2 ? [['re2 (native)', (p) => { const r = new NativeRE2(p.replace(/^\(\?i\)/, ''), p.startsWith('(?i)') ? 'iu' : 'u'); return (s) => r.test(s) }]] : []),
]

const ns = (start) => Number(process.hrtime.bigint() - start)
const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} ms` : n >= 1e3 ? `${(n / 1e3).toFixed(2)} µs` : `${n.toFixed(0)} ns`)

console.log(`${CASES.length} patterns, ${ITERATIONS} match calls each\n`)
console.log('engine'.padEnd(24), 'compile/pattern'.padStart(16), 'match/call'.padStart(12), `(a+)+$ on a×N+'!'`.padStart(34))
for (const [name, compile] of engines) {
  let compileNs = 0
  const rounds = 200
  for (let round = 0; round < rounds; round++) {
    for (const [pattern] of CASES) {
      const start = process.hrtime.bigint()
      compile(pattern)
      compileNs += ns(start)
    }
  }
  const tests = CASES.map(([pattern, input]) => [compile(pattern), input])
  let sink = 0
  for (const [test, input] of tests) for (let i = 0; i < 2000; i++) sink += test(input) ? 1 : 0 // warm-up
  const start = process.hrtime.bigint()
  for (const [test, input] of tests) for (let i = 0; i < ITERATIONS; i++) sink += test(input) ? 1 : 0
  const matchNs = ns(start) / (ITERATIONS * tests.length)
  // Pathological: the backtracking engine is given fewer a's (each one doubles its time); the others 100,000.
  const n = name.startsWith('RegExp') ? EVIL_FOR_BACKTRACKING : 100_000
  const evil = compile('(a+)+$')
  const evilStart = process.hrtime.bigint()
  sink += evil('a'.repeat(n) + '!') ? 1 : 0
  const evilNs = ns(evilStart)
  console.log(name.padEnd(24), fmt(compileNs / (rounds * CASES.length)).padStart(16), fmt(matchNs).padStart(12), `${fmt(evilNs)} (N=${n})`.padStart(34), sink < 0 ? '' : '')
}
