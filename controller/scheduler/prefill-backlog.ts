/**
 * The prefill work the controller believes each group has queued: for every request sent to a group, the prompt
 * tokens pick() predicted it would miss in that group's cache, until its first token comes back (its prefill is
 * done) or it ends otherwise. pick() reads it as GroupView.pendingPrefillTokens: the time to a first token is
 * mostly the prefill queued ahead plus the request's own miss, which outstanding counts alone cannot see (one
 * request missing a 32k-token document weighs as much as a hundred with cached prefixes).
 */

export class PrefillBacklog {
  private readonly byGroup = new Map<string, number>();
  private readonly byRequest = new Map<string, { group: string; tokens: number }>();

  dispatched(requestId: string, group: string, missTokens: number): void {
    this.settle(requestId);
    const tokens = Math.max(0, missTokens);
    this.byRequest.set(requestId, { group, tokens });
    this.byGroup.set(group, (this.byGroup.get(group) ?? 0) + tokens);
  }

  /** The request's first token arrived, or it finished, failed or was cancelled: its prefill is no longer ahead. */
  settle(requestId: string): void {
    const r = this.byRequest.get(requestId);
    if (!r) return;
    this.byRequest.delete(requestId);
    const left = (this.byGroup.get(r.group) ?? 0) - r.tokens;
    if (left > 0) this.byGroup.set(r.group, left);
    else this.byGroup.delete(r.group);
  }

  tokens(group: string): number {
    return this.byGroup.get(group) ?? 0;
  }
}
