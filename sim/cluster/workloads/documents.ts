/**
 * Long-document QA: D documents of L tokens (contracts, papers, code bases), each asked short questions by many
 * readers. The prefix is long and the reuse is per document: a miss costs a 32k-token prefill.
 */
import type { Workload } from '../workload.ts';
import type { ArrivalSpec } from './arrivals.ts';
import { sharedPrefix } from './shared-prefix.ts';

export interface DocumentQaSpec {
  documents: number;
  documentTokens: number;
  questionTokens: number;
  outputTokens: { min: number; max: number };
  arrivals: ArrivalSpec;
  warmupS?: number;
  seed: number;
}

export function documentQa(spec: DocumentQaSpec): Workload {
  return sharedPrefix({
    name: 'long_document_qa',
    tenants: spec.documents,
    prefixTokens: spec.documentTokens,
    usersPerTenant: 1,
    questionTokens: spec.questionTokens,
    outputTokens: spec.outputTokens,
    arrivals: spec.arrivals,
    ...(spec.warmupS === undefined ? {} : { warmupS: spec.warmupS }),
    seed: spec.seed,
    ownerLabel: 'doc',
  });
}
