/**
 * The kind of a pick reason: its words before the first digit or punctuation ("prefix hit", "imbalance guard",
 * "least outstanding"), what the dispatcher counts on Control.Status and the cluster report tallies.
 */
export function reasonKind(reason: string): string {
  return /^[a-z][a-z ]*[a-z]/i.exec(reason)?.[0] ?? reason;
}
