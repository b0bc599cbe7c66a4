/**
 * `corral-engine-sim serve MODEL [flags]`: a stand-in for `vllm serve` (see options.ts for the flags). Opens the
 * HTTP port only after the simulated start-up (startup-plan.ts: weights load, KV cache sized from GPU memory),
 * like vLLM, or exits 1 with vLLM's error when the model does not fit; SIGTERM/SIGINT stop it with 0. With
 * --sim-time-scale F every delay runs F times faster and every reported time is in simulated seconds.
 */
import { systemClock } from '../../common/clock.ts';
import { createLogger } from '../../common/log.ts';
import { engineLatency } from './engine-latency.ts';
import { startGroupLink } from './group/group-link.ts';
import { EngineCore } from './model/engine-core.ts';
import { scaledTime } from './model/time-scale.ts';
import { parseArgs, USAGE } from './options.ts';
import { TokenFaults } from './server/faults.ts';
import { createSimHttpServer } from './server/http-server.ts';
import { planStartup } from './startup-plan.ts';
import { vllmLine } from './vllm-log.ts';

const parsed = parseArgs(process.argv.slice(2), process.env);
if (parsed.kind === 'usage-error') {
  process.stderr.write(`${USAGE}\nvllm serve: error: ${parsed.message}\n`);
  process.exit(2);
}
if (parsed.kind === 'invalid') {
  for (const e of parsed.errors) process.stderr.write(`vllm serve: error: ${e.path}: ${e.message}\n`);
  process.exit(2);
}
const o = parsed.options;
const log = createLogger('engine-sim');
const sim = scaledTime(
  systemClock,
  { set: (fn, ms) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout) },
  o.timeScale,
);
/** A vLLM log line stamped with the simulated time. */
const line = (level: 'INFO' | 'WARNING' | 'ERROR', source: string, msg: string) =>
  vllmLine(level, source, msg, new Date(sim.clock.now()));
const out = (source: string, msg: string) => process.stdout.write(`${line('INFO', source, msg)}\n`);
const startup = planStartup(o);

out('api_server.py:1839', `vLLM API server version ${'0.11.0'} (corral engine simulator)`);
out(
  'api_server.py:1840',
  `args: model=${o.model} served_model_name=${o.servedModelName} tp=${o.tensorParallelSize} pp=${o.pipelineParallelSize} max_model_len=${o.maxModelLen} max_num_seqs=${o.maxNumSeqs}`,
);

const latency = engineLatency(o);
if (latency.kind === 'error') {
  process.stderr.write(`vllm serve: error: ${latency.message}\n`);
  process.exit(2);
}
out('sim_latency.py:1', latency.describe);

const core = new EngineCore(
  {
    maxNumSeqs: o.maxNumSeqs,
    maxNumBatchedTokens: o.maxNumBatchedTokens,
    maxModelLen: o.maxModelLen,
    enablePrefixCaching: o.enablePrefixCaching,
    schedulingPolicy: o.schedulingPolicy,
    ttftMs: o.ttftMs,
    itlMs: o.itlMs,
    output: o.output,
    eosProb: o.eosProb,
    defaultSeed: o.seed,
    kvTokens: startup.result.kind === 'ok' ? startup.result.kvTokens : 1,
    blockSize: o.blockSize,
    latency: latency.kind === 'calibrated' ? latency.model : undefined,
  },
  sim.clock,
  sim.timers,
);
/** An engine core that dies takes the API server down with it (vLLM V1): error lines, then exit 1. */
function crash(reason: string): never {
  process.stderr.write(
    `${line('ERROR', 'core.py:700', `EngineCore encountered a fatal error (${reason}).`)}\n`,
  );
  process.stderr.write(
    `${line('ERROR', 'async_llm.py:420', 'AsyncLLM output_handler failed. EngineDeadError')}\n`,
  );
  process.exit(1);
}

const tokenFaults = new TokenFaults(o.crashAfterTokens, o.hangAfterTokens);
core.onToken = (total) => {
  const due = tokenFaults.due(total);
  if (due === 'crash') crash(`fault injected: crash after ${total} generated tokens`);
  if (due === 'hang') {
    log.warn('fault injected', { fault: 'hang', afterTokens: total });
    core.hang();
  }
};

const http = createSimHttpServer(
  {
    servedModelName: o.servedModelName,
    maxModelLen: o.maxModelLen,
    apiKey: o.apiKey,
    priorityEnabled: o.schedulingPolicy === 'priority',
    faultRates: { rate503: o.errorRate503, rate429: o.errorRate429 },
    faultSeed: o.seed,
    crash,
    tokenFaults,
    after: (fn, ms) => sim.timers.set(fn, ms),
  },
  core,
  log,
);

function stop(signal: string): void {
  out('launcher.py:80', `Shutting down FastAPI HTTP server (${signal}).`);
  http.server.close();
  http.server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

sim.timers.set(() => {
  out(
    'gpu_model_runner.py:2007',
    `Model loading took ${startup.weightGiBPerGpu.toFixed(4)} GiB and ${(startup.loadMs / 1000).toFixed(6)} seconds`,
  );
}, startup.loadMs);
// Rank 0 of a multi-node group serves only once every rank joined; ranks > 0 serve no HTTP (vLLM --headless).
const serves = !o.headless && o.nodeRank === 0;
let loaded = false;
let joined = o.nnodes === 1;

function openApi(): void {
  if (!loaded || !joined) return;
  if (o.failStart) {
    process.stderr.write(
      `${line('ERROR', 'core.py:708', 'EngineCore failed to start (--sim-fail-start).')}\nRuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}\n`,
    );
    process.exit(1);
  }
  if (o.crashAtMs !== undefined) sim.timers.set(() => crash(`--sim-crash-at-ms ${o.crashAtMs}`), o.crashAtMs);
  if (!serves) {
    out('core.py:90', `Headless rank ${o.nodeRank}: serving no HTTP API.`);
    return;
  }
  http.server.on('error', (e) => {
    process.stderr.write(`${line('ERROR', 'api_server.py:1900', `OSError: ${String(e)}`)}\n`);
    process.exit(1);
  });
  http.server.listen(o.port, o.host, () => {
    out(
      'launcher.py:37',
      'Available routes are: /health, /v1/models, /v1/completions, /v1/chat/completions, /tokenize, /detokenize, /version, /metrics',
    );
    out('launcher.py:46', `Route: Started server process [${process.pid}]`);
    out('on.py:62', 'Application startup complete.');
  });
}

if (o.nnodes > 1) {
  startGroupLink(
    {
      nnodes: o.nnodes,
      nodeRank: o.nodeRank,
      masterAddr: o.masterAddr,
      masterPort: o.masterPort,
      joinTimeoutMs: o.joinTimeoutMs,
    },
    {
      joined() {
        joined = true;
        out('parallel_state.py:1134', `world_size=${o.nnodes} rank=${o.nodeRank}: all ranks joined`);
        openApi();
      },
      broken(message) {
        process.stderr.write(`${line('ERROR', 'core.py:700', message)}\n`);
        process.stderr.write(`${line('ERROR', 'core.py:701', 'EngineCore failed: EngineDeadError')}\n`);
        process.exit(1);
      },
      info: (m) => out('parallel_state.py:1100', m),
    },
  );
}

sim.timers.set(() => {
  const r = startup.result;
  if (r.kind === 'fail') {
    process.stderr.write(
      `${line('ERROR', 'core.py:708', 'EngineCore failed to start.')}\n${r.error}\nRuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}\n`,
    );
    process.exit(1);
  }
  out('kv_cache_utils.py:1087', `GPU KV cache size: ${r.kvTokens.toLocaleString('en-US')} tokens`);
  out(
    'kv_cache_utils.py:1091',
    `Maximum concurrency for ${o.maxModelLen.toLocaleString('en-US')} tokens per request: ${r.concurrency.toFixed(2)}x`,
  );
  loaded = true;
  openApi();
}, startup.loadMs + startup.profileMs);
