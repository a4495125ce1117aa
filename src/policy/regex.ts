// Every regular expression a user supplies (url-rewrite and redirect `from`, CEL's `matches`, --ua-filter-*)
// runs on re2js, a linear-time RE2 engine in plain JavaScript: JavaScript's own RegExp backtracks, and one
// pattern such as `(a+)+$` against 31 a's held the event loop, so every endpoint and SSH login, for 20 s.
// Why re2js and not the native `re2` addon: bench/regex-engines.js (the addon matches ~9x faster, but needs a
// node-gyp build per Node version in every install and CI run; a rule's match costs a few µs here).
// RE2 has no backreferences or lookaround: such patterns are refused when the policy is bound, naming them.
import { LRUCache } from 'lru-cache'
import { RE2JS } from 're2js'
import { PortholeError } from '../core/errors.js'

export type Regex = RE2JS

/** Why RE2 refuses `pattern`, or undefined when it compiles. */
export function re2Error (pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern)
    return undefined
  } catch (error) {
    return (error as Error).message.replace(/^error parsing regexp: /, '')
  }
}

/** Compiles a user's pattern at bind time; `where` names the field (`from`). Refused: PH_1008 naming it. */
export function compileRegex (pattern: string, where: string): Regex {
  try {
    return RE2JS.compile(pattern)
  } catch (error) {
    const why = (error as Error).message.replace(/^error parsing regexp: /, '')
    throw new PortholeError('PH_1008', `${where} ${JSON.stringify(pattern)}: not an RE2 pattern (${why}; RE2 has no backreferences or lookaround)`)
  }
}

/** `text` with the first match of `regex` replaced, JavaScript's String.replace semantics for `replacement`
 *  ($1, $<name>, $&, $$); the text unchanged when nothing matches. */
export function replaceFirst (regex: Regex, text: string, replacement: string): string {
  return regex.matcher(text).replaceFirst(replacement)
}

/** Patterns CEL's `matches` compiled, by source: most are literals compiled once per process, and an
 *  expression building patterns from request data cannot grow this past its bound. */
const celPatterns = new LRUCache<string, Regex>({ max: 512 })

/** The engine @bufbuild/cel's `matches` runs on (its `re2` option): re2js, compiled once per pattern. */
export const celRegexEngine = {
  compile (pattern: string): Regex {
    let regex = celPatterns.get(pattern)
    if (regex === undefined) celPatterns.set(pattern, (regex = RE2JS.compile(pattern)))
    return regex
  },
}
