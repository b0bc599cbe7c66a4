/**
 * What a chaos run checks, per request, from the client's side only: every token index arrived once (no gap,
 * no duplicate), the request ended (finished, or an explicit error), and the finished usage agrees with what
 * arrived. "Lost" is a request that was accepted and then neither finished nor failed: the one outcome corral
 * promises never happens.
 */

export type Outcome = 'completed' | 'failed_with_error' | 'lost';

export interface RequestAudit {
  id: string;
  outcome: Outcome;
  tokens: number;
  gaps: number;
  duplicates: number;
  /** Times the client reconnected (Resume) to continue this request. */
  resumes: number;
  error?: string;
}

export interface ChaosSummary {
  requests: number;
  completed: number;
  failed_with_error: number;
  lost: number;
  token_gaps: number;
  token_duplicates: number;
  resumes: number;
  /** Distinct error messages with their counts, so the report can say why the failures failed. */
  errors: Record<string, number>;
}

/** Follows one request's stream as the client sees it, across reconnects. */
export class StreamAudit {
  private readonly seen = new Set<number>();
  private duplicates = 0;
  private completionTokens: number | undefined;
  private error: string | undefined;
  private resumes = 0;

  constructor(readonly id: string) {}

  delta(index: number, tokenCount: number): void {
    for (let i = index; i < index + tokenCount; i++) {
      if (this.seen.has(i)) this.duplicates += 1;
      else this.seen.add(i);
    }
  }

  finished(completionTokens: number): void {
    this.completionTokens = completionTokens;
  }

  failed(message: string): void {
    this.error = message;
  }

  resumed(): void {
    this.resumes += 1;
  }

  /** The next token index the client has not received: where a Resume continues from. */
  get nextIndex(): number {
    let i = 0;
    while (this.seen.has(i)) i++;
    return i;
  }

  result(): RequestAudit {
    const expected = this.completionTokens ?? (this.seen.size === 0 ? 0 : Math.max(...this.seen) + 1);
    let gaps = 0;
    for (let i = 0; i < expected; i++) if (!this.seen.has(i)) gaps += 1;
    // Tokens past the finished count are as wrong as repeats: the client got text the request did not produce.
    for (const i of this.seen) if (i >= expected) gaps += 1;
    const outcome: Outcome =
      this.completionTokens !== undefined
        ? 'completed'
        : this.error !== undefined
          ? 'failed_with_error'
          : 'lost';
    return {
      id: this.id,
      outcome,
      tokens: this.seen.size,
      gaps,
      duplicates: this.duplicates,
      resumes: this.resumes,
      ...(this.error !== undefined && { error: this.error }),
    };
  }
}

export function summarize(audits: readonly RequestAudit[]): ChaosSummary {
  const s: ChaosSummary = {
    requests: audits.length,
    completed: 0,
    failed_with_error: 0,
    lost: 0,
    token_gaps: 0,
    token_duplicates: 0,
    resumes: 0,
    errors: {},
  };
  for (const a of audits) {
    s[a.outcome] += 1;
    s.token_gaps += a.gaps;
    s.token_duplicates += a.duplicates;
    s.resumes += a.resumes;
    if (a.error !== undefined) s.errors[a.error] = (s.errors[a.error] ?? 0) + 1;
  }
  return s;
}
