/**
 * The process-level side of bench:routing-agreement: a LocalCluster (Redis, one controller, one worker per
 * group, simulated engines at --sim-time-scale F) serving the scenario's deployment, driven open-loop by the
 * workload's arrivals (request i is sent at arrival_i / F on the wall clock, its prompt as token ids so nothing
 * is tokenised on the way) over gRPC, as a client sees it. Every time is reported in simulated seconds (wall x F).
 *
 * Per request: TTFT as the client sees it (send to first delta), and the controller's part of it from the
 * Finished event's timing (queueMs: accepted -> dispatch call; timeToFirstTokenMs: accepted -> first token back
 * at the dispatcher); over the run, the engines' own TTFT (arrival at the engine -> first token, their
 * vllm:time_to_first_token_seconds), so a disagreement with the cluster simulator can be placed: before the
 * engine, in it, or on the way back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { inferenceClient } from '../../cli/clients.ts';
import { LocalCluster } from '../../cli/local-cluster.ts';
import type { ClusterStatus } from '../../proto/gen/corral/v1/control.ts';
import {
  type GenerateEvent,
  type GenerateRequest,
  PriorityClass,
} from '../../proto/gen/corral/v1/inference.ts';
import type { Workload } from '../../sim/cluster/workload.ts';
import { promptTokenIds } from '../../sim/cluster/workloads/prompt-segments.ts';
import { parsePrometheusText } from '../../worker/engine/metrics.ts';
import { CHECKPOINT, DEPLOYMENT, GPU, GROUPS, MAX_MODEL_LEN, MAX_NUM_SEQS } from './scenario.ts';

export interface LiveRequest {
  /** Simulated seconds; NaN when it never got a first token. */
  ttftS: number;
  /** The controller's share (simulated seconds): accepted -> dispatched, accepted -> first token at it. */
  queueS: number;
  controllerTtftS: number;
  error?: string;
}

export interface LiveRun {
  /** By request id (index in the workload). */
  requests: LiveRequest[];
  pickReasons: Record<string, number>;
  /** The engines' prefix-cache hit rate over the run (their heartbeats' counters). */
  prefixHitRate: number;
  /** The engines' own TTFT over the run (simulated seconds, their histogram's sum / count): every request. */
  engineTtft: { meanS: number; count: number };
}

export interface LiveOptions {
  timeScale: number;
  onProgress: (line: string) => void;
  /** Seconds to wait for the last requests after the last arrival. */
  drainS?: number;
}

/**
 * Simulated start-up (weights load + profiling), short: it is not what the bench compares, and at a small time
 * scale the default (~4 simulated seconds for 405B FP8 per GPU) would take most of a minute of wall time.
 */
const STARTUP_MS = 500;

function config(timeScale: number): string {
  return `heartbeatIntervalMs: 1000
workerTimeoutMs: 3000
deployments:
  - name: ${DEPLOYMENT}
    model: ${CHECKPOINT}
    replicas: ${GROUPS}
    tensorParallel: 8
    pipelineParallel: 1
    gpuType: ${GPU}
    maxModelLen: ${MAX_MODEL_LEN}
    maxNumSeqs: ${MAX_NUM_SEQS}
    gpuMemoryUtilization: 0.9
    defaultMaxTokens: 256
    maxPromptBytes: 1048576
    engineArgs: ['--sim-time-scale', '${timeScale}', '--sim-startup-ms', '${STARTUP_MS}']
`;
}

function request(id: string, ids: number[], maxTokens: number): GenerateRequest {
  return {
    model: DEPLOYMENT,
    requestId: id,
    input: { $case: 'promptTokenIds', value: { ids } },
    maxTokens,
    sampling: { stop: [], ignoreEos: true, minTokens: 0 },
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
  };
}

export async function runLive(w: Workload, o: LiveOptions): Promise<LiveRun> {
  const F = o.timeScale;
  const dir = mkdtempSync(join(tmpdir(), 'corral-agreement-'));
  const cluster = await LocalCluster.start({
    dir,
    config: config(F),
    workers: Array.from({ length: GROUPS }, (_, i) => ({ nodeName: `node-${i + 1}`, gpus: 8, gpuType: GPU })),
    onProgress: (m) => o.onProgress(`live: ${m}`),
  });
  const client = inferenceClient(cluster.grpcAddress);
  try {
    await cluster.waitReady(120_000);
    const before = await engineCounters(cluster);
    const ttftBefore = await engineFirstTokens(await cluster.status());
    const requests: LiveRequest[] = w.requests.map(() => ({
      ttftS: Number.NaN,
      queueS: Number.NaN,
      controllerTtftS: Number.NaN,
    }));
    o.onProgress(
      `live: ${w.requests.length} requests over ${(w.durationMs / 1000 / F).toFixed(0)} s of wall time`,
    );
    const t0 = performance.now();
    const runs: Promise<void>[] = [];
    for (const r of w.requests) {
      const due = t0 + r.arrivalMs / F;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const sentAt = performance.now();
      const out = requests[r.id] as LiveRequest;
      const call = client.generate(request(`agreement-${r.id}`, promptTokenIds(r.segments), r.outputTokens));
      runs.push(follow(call, sentAt, F, out));
    }
    const drainMs = (o.drainS ?? 60) * 1000;
    await Promise.race([Promise.all(runs), new Promise((resolve) => setTimeout(resolve, drainMs).unref())]);
    // The engines' counters reach the controller with the next heartbeat.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = await engineCounters(cluster);
    const status = await cluster.status();
    const ttftAfter = await engineFirstTokens(status);
    const firstTokens = ttftAfter.count - ttftBefore.count;
    const reasons = status.deployments.find((d) => d.name === DEPLOYMENT)?.pickReasons ?? {};
    const queries = after.queries - before.queries;
    return {
      requests,
      pickReasons: reasons,
      prefixHitRate: queries > 0 ? (after.hits - before.hits) / queries : 0,
      engineTtft: {
        meanS: firstTokens > 0 ? (ttftAfter.sumS - ttftBefore.sumS) / firstTokens : Number.NaN,
        count: firstTokens,
      },
    };
  } finally {
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function follow(
  call: ClientReadableStream<GenerateEvent>,
  sentAt: number,
  F: number,
  out: LiveRequest,
): Promise<void> {
  try {
    for await (const e of call as AsyncIterable<GenerateEvent>) {
      const ev = e.event;
      if (ev?.$case === 'delta' && Number.isNaN(out.ttftS))
        out.ttftS = ((performance.now() - sentAt) * F) / 1000;
      if (ev?.$case === 'finished' && ev.value.timing) {
        out.queueS = (ev.value.timing.queueMs * F) / 1000;
        out.controllerTtftS = (ev.value.timing.timeToFirstTokenMs * F) / 1000;
      }
    }
  } catch (e) {
    out.error = (e as Error).message;
  }
}

/** Summed prefix-cache counters of the deployment's engines, as the workers last reported them. */
async function engineCounters(cluster: LocalCluster): Promise<{ hits: number; queries: number }> {
  const status = await cluster.status();
  let hits = 0;
  let queries = 0;
  for (const w of status.workers)
    for (const e of w.engines ?? []) {
      hits += Number(e.prefixCacheHits ?? 0);
      queries += Number(e.prefixCacheQueries ?? 0);
    }
  return { hits, queries };
}

const TTFT_SERIES = new Set([
  'vllm:time_to_first_token_seconds_sum',
  'vllm:time_to_first_token_seconds_count',
]);

/** Summed TTFT histogram (sum in simulated seconds, count) of every engine serving an HTTP API. */
async function engineFirstTokens(status: ClusterStatus): Promise<{ sumS: number; count: number }> {
  let sumS = 0;
  let count = 0;
  for (const w of status.workers)
    for (const e of w.engines ?? []) {
      if (!e.httpAddress) continue;
      const res = await fetch(`http://${e.httpAddress}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (res.status !== 200) throw new Error(`GET ${e.httpAddress}/metrics answered ${res.status}`);
      const samples = parsePrometheusText(await res.text(), TTFT_SERIES);
      for (const v of samples.get('vllm:time_to_first_token_seconds_sum') ?? []) sumS += v;
      for (const v of samples.get('vllm:time_to_first_token_seconds_count') ?? []) count += v;
    }
  return { sumS, count };
}
