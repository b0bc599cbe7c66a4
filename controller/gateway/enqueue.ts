/**
 * What a validated request goes through before it waits in its deployment's queue, whoever submits it:
 *   check the context -> refuse when no group will serve it -> charge the tenant's budgets -> submit
 * The request path runs it for a client that then follows the stream (request-path.ts); the batch driver runs
 * it for every line of a batch (controller/batch/), so a batch line is admitted exactly like an API request:
 * same context limits, same budgets, same fair share of its tenant.
 *
 * Fairness cost: 1 per request. The dispatcher meters engine sequences (max-num-seqs), so a request is the
 * unit the queue shares between tenants; tokens are the budgets' business (admission.charge).
 */
import type { Clock } from '../../common/clock.ts';
import { UnavailableError } from '../../common/errors.ts';
import type { GenerateRequest } from '../../proto/gen/corral/v1/inference.ts';
import type { Admission, Admitted } from '../admission/admission.ts';
import type { Deployment } from '../config/controller-config.ts';
import { deploymentView, explainReadiness } from '../deployments/replica-view.ts';
import { serializeRequest } from '../dispatch/attempt-plan.ts';
import type { RequestQueue, SubmitOutcome, SubmitRequest } from '../queue/request-queue.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { type GroupView, pick } from '../scheduler/pick.ts';
import { checkContext } from './context-check.ts';
import type { PromptInput } from './request-validation.ts';
import type { TokenCounter } from './token-counter.ts';

export interface EnqueueDeps {
  registry: WorkerRegistry;
  admission: Admission;
  tokens: TokenCounter;
  clock: Clock;
  random: () => number;
}

export interface Enqueue {
  req: GenerateRequest;
  requestId: string;
  deployment: Deployment;
  /** What validateRequest made of the request's input. */
  prompt: PromptInput;
  who: Admitted;
  queue: RequestQueue;
  /** Submits instead of queue.submit (the lane's, through this process's dispatcher: Lane.submit). */
  submit?: (req: SubmitRequest) => Promise<SubmitOutcome>;
  /** Absolute deadline (epoch ms) in the queue. */
  deadline?: number;
  /** W3C traceparent handed to the dispatcher. */
  trace?: string;
  /** Rejects to end the admission early (a Cancel, the client leaving): the count and the charge race it. */
  cancelled?: Promise<never>;
}

export async function enqueue(deps: EnqueueDeps, e: Enqueue): Promise<SubmitOutcome> {
  const race = <T>(p: Promise<T>) => (e.cancelled ? Promise.race([p, e.cancelled]) : p);
  // A long prompt's count takes a while; a cancel during it ends the request at once.
  const budget = await race(checkContext(e.prompt, e.req.maxTokens, e.deployment, deps.tokens));
  const promptTokens = budget.promptTokens ?? (e.prompt.t === 'ids' ? e.prompt.count : e.prompt.bytes);
  refuseWhenUnserved(e.deployment, deps);
  await race(chargeUnlessRetry(deps, e.queue, e.requestId, e.who, promptTokens + budget.maxTokens));
  const submit = e.submit ?? ((r: SubmitRequest) => e.queue.submit(r));
  return submit({
    id: e.requestId,
    tenant: e.who.tenant,
    weight: e.who.weight,
    cls: e.who.cls,
    body: serializeRequest({ ...e.req, requestId: e.requestId, maxTokens: budget.maxTokens }),
    cost: 1,
    ...(e.deadline === undefined ? {} : { deadline: e.deadline }),
    ...(e.trace ? { trace: e.trace } : {}),
  });
}

/** No group is ready or on its way: nothing would ever run the request, so it is not queued. */
function refuseWhenUnserved(d: Deployment, deps: EnqueueDeps): void {
  const view = deploymentView(d, deps.registry.all(), deps.clock.now());
  const groups: GroupView[] = view.replicas.map((r) => ({
    id: r.engineId,
    deployment: d.name,
    state: r.routable ? 'ready' : r.placed ? 'starting' : 'unavailable',
    outstanding: 0,
  }));
  if (pick({ groups }, { deployment: d.name }, deps.random).type === 'reject')
    throw new UnavailableError(`no ready replica of model ${d.name} (${explainReadiness(view)})`, {
      model: d.name,
    });
}

/**
 * Charges the tenant's budgets, except for a retry of a request it already has in the queue: a client that
 * lost its stream must be able to attach again although its budget is spent (the request was paid for).
 */
async function chargeUnlessRetry(
  deps: EnqueueDeps,
  queue: RequestQueue,
  requestId: string,
  who: Admitted,
  tokens: number,
): Promise<void> {
  try {
    await deps.admission.charge(who, tokens);
  } catch (e) {
    const existing = await queue.get(requestId).catch(() => undefined);
    if (existing?.tenant === who.tenant) return;
    throw e;
  }
}
