// "did you mean --foo-bar?" for misspelt options: the nearest known name by edit distance, if near enough.

function distance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

/** '; did you mean --<nearest>?' (or another prefix: '' for commands) or '' when nothing is close. */
export function didYouMean (given: string, known: Iterable<string>, prefix = '--'): string {
  let best: string | undefined
  let bestDistance = Infinity
  for (const name of known) {
    const d = distance(given, name)
    if (d < bestDistance) { best = name; bestDistance = d }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(given.length / 3)) ? `; did you mean ${prefix}${best}?` : ''
}
