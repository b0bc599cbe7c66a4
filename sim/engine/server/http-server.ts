/**
 * The simulator's HTTP front end, shaped like vLLM's OpenAI-compatible server (VLLM.md): routes, SSE framing,
 * error JSON, bearer-key check on /v1/*, X-Request-Id, and a client disconnect aborting the request.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../../../common/log.ts';
import { decode, encodePrompt } from '../../../common/tokenizer.ts';
import type { EngineCore } from '../model/engine-core.ts';
import { type EngineFault, type FaultRates, requestFault, type TokenFaults, uniforms } from './faults.ts';
import { badRequest, HttpError, type Kind, parseRequest, promptIds } from './openai-request.ts';

/** The vLLM release whose interface this simulator imitates (GET /version). */
export const SIMULATED_VLLM_VERSION = '0.11.0';
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface ServerConfig {
  servedModelName: string;
  maxModelLen: number;
  apiKey: string | undefined;
  priorityEnabled: boolean;
  faultRates: FaultRates;
  faultSeed: number;
  /** The engine crashes: the process exits non-zero (main.ts decides how). */
  crash(reason: string): void;
  /** Token-count faults the admin endpoint arms (main.ts checks them on every token). */
  tokenFaults: TokenFaults;
  /** A timer in simulated time, for faults armed to fire later. */
  after(fn: () => void, ms: number): void;
}

export interface SimHttpServer {
  server: Server;
  /** Applies an engine fault: crash, dead (/health 503, requests 500, vLLM's EngineDeadError) or hang. */
  fault(kind: EngineFault): void;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(e: HttpError) {
  return { error: { message: e.message, type: e.type, param: null, code: e.status } };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'BadRequestError', 'request body too large');
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('request body is not valid JSON');
  }
}

export function createSimHttpServer(cfg: ServerConfig, core: EngineCore, log: Logger): SimHttpServer {
  let dead = false;
  const rates: FaultRates = { ...cfg.faultRates };
  const u = uniforms(cfg.faultSeed);
  const fault = (kind: EngineFault) => {
    log.warn('fault injected', { fault: kind });
    if (kind === 'crash') cfg.crash('fault injected: crash');
    else if (kind === 'dead') dead = true;
    else core.hang();
  };
  const created = () => Math.floor(Date.now() / 1000);

  async function generate(
    kind: Kind,
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
  ): Promise<void> {
    const f = requestFault(req.headers['x-sim-fault'] as string | undefined, rates, u);
    if (f instanceof HttpError) throw f;
    if (f !== null) fault(f);
    const p = parseRequest(kind, await readJson(req), {
      servedModelName: cfg.servedModelName,
      maxModelLen: cfg.maxModelLen,
      priorityEnabled: cfg.priorityEnabled,
    });
    if (dead)
      throw new HttpError(
        500,
        'InternalServerError',
        'EngineCore encountered an issue. See stack trace (above) for the root cause.',
      );
    const refused = core.refusal(p.gen.promptIds.length, p.gen.maxTokens);
    if (refused !== null) throw badRequest(`This request cannot run on this engine: ${refused}.`);
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${requestId}`;
    const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const base = () => ({ id, object, created: created(), model: p.model });
    const promptLen = p.gen.promptIds.length;
    const ids: number[] = [];
    let text = '';
    let closed = false;

    if (p.stream) {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-request-id': requestId,
      });
      res.flushHeaders();
    }
    const send = (obj: unknown) => {
      if (!closed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
    };
    const choice = (extra: Record<string, unknown>, tokenIds: number[] | undefined) => {
      const c: Record<string, unknown> = { index: 0, ...extra, logprobs: null };
      if (p.returnTokenIds && tokenIds) c.token_ids = tokenIds;
      return c;
    };
    if (p.stream && kind === 'chat') {
      send({
        ...base(),
        choices: [
          { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
        ],
        ...(p.returnTokenIds ? { prompt_token_ids: p.gen.promptIds } : {}),
      });
    }
    let first = true;
    const abort = core.submit(
      { id: requestId, ...p.gen },
      {
        token(tokenId, delta, end) {
          ids.push(tokenId);
          text += delta;
          if (!p.stream) return;
          const pick = kind === 'chat' ? { delta: { content: delta } } : { text: delta };
          const fin = { finish_reason: end?.reason ?? null, stop_reason: end?.stopReason ?? null };
          const c = choice({ ...pick, ...fin }, [tokenId]);
          if (kind === 'completion' && first && p.returnTokenIds) c.prompt_token_ids = p.gen.promptIds;
          first = false;
          send({ ...base(), choices: [c] });
        },
        finish(reason, stopReason) {
          const usage = {
            prompt_tokens: promptLen,
            total_tokens: promptLen + ids.length,
            completion_tokens: ids.length,
          };
          if (p.stream) {
            if (p.includeUsage) send({ ...base(), choices: [], usage });
            if (!closed) res.end('data: [DONE]\n\n');
            return;
          }
          const c =
            kind === 'chat'
              ? choice(
                  {
                    message: { role: 'assistant', content: text },
                    finish_reason: reason,
                    stop_reason: stopReason,
                  },
                  ids,
                )
              : choice({ text, finish_reason: reason, stop_reason: stopReason }, ids);
          if (kind === 'completion' && p.returnTokenIds) c.prompt_token_ids = p.gen.promptIds;
          sendJson(res, 200, {
            id,
            object: kind === 'chat' ? 'chat.completion' : 'text_completion',
            created: created(),
            model: p.model,
            choices: [c],
            usage,
            ...(kind === 'chat' && p.returnTokenIds ? { prompt_token_ids: p.gen.promptIds } : {}),
          });
        },
      },
    );
    res.on('close', () => {
      closed = true;
      if (!res.writableFinished) log.info('client disconnected: request aborted', { requestId });
      abort();
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const requestId = (req.headers['x-request-id'] as string | undefined) || randomUUID().replaceAll('-', '');
    res.setHeader('x-request-id', requestId);
    if (path.startsWith('/v1/') && cfg.apiKey !== undefined) {
      if (req.headers.authorization !== `Bearer ${cfg.apiKey}`)
        return sendJson(res, 401, { error: 'Unauthorized' });
    }
    const method = req.method ?? 'GET';
    const route = `${method} ${path}`;
    switch (route) {
      case 'GET /health':
        res.writeHead(dead ? 503 : 200, { 'content-length': 0 });
        return void res.end();
      case 'GET /version':
        return sendJson(res, 200, { version: SIMULATED_VLLM_VERSION });
      case 'GET /v1/models':
        return sendJson(res, 200, {
          object: 'list',
          data: [
            {
              id: cfg.servedModelName,
              object: 'model',
              created: created(),
              owned_by: 'vllm',
              root: cfg.servedModelName,
              parent: null,
              max_model_len: cfg.maxModelLen,
              permission: [],
            },
          ],
        });
      case 'GET /metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        return void res.end(
          core.metrics.render(cfg.servedModelName, {
            running: core.numRunning,
            waiting: core.numWaiting,
            kvUsage: core.kvUsage,
          }),
        );
      case 'POST /v1/completions':
        return generate('completion', req, res, requestId);
      case 'POST /v1/chat/completions':
        return generate('chat', req, res, requestId);
      case 'POST /sim/fault': {
        // Simulator-only admin endpoint: {"fault": "crash"|"dead"|"hang"}, {"rate_503": x, "rate_429": y},
        // {"crash_after_tokens": n, "hang_after_tokens": n} (more tokens from now), {"crash_in_ms": t} (simulated).
        const body = (await readJson(req)) as Record<string, unknown> | null;
        const rate = (v: unknown, name: string) => {
          if (typeof v !== 'number' || v < 0 || v > 1)
            throw badRequest(`${name}: must be a number in [0, 1]`);
          return v;
        };
        const count = (v: unknown, name: string) => {
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
            throw badRequest(`${name}: must be a non-negative integer`);
          return v;
        };
        if (body === null || typeof body !== 'object' || Array.isArray(body))
          throw badRequest('the body must be a JSON object');
        const known = [
          'fault',
          'rate_503',
          'rate_429',
          'crash_after_tokens',
          'hang_after_tokens',
          'crash_in_ms',
        ];
        const unknown = Object.keys(body).filter((k) => !known.includes(k));
        if (unknown.length > 0)
          throw badRequest(`unknown fields ${unknown.join(', ')}; expected ${known.join(', ')}`);
        const crashAfter =
          body.crash_after_tokens === undefined
            ? undefined
            : count(body.crash_after_tokens, 'crash_after_tokens');
        const hangAfter =
          body.hang_after_tokens === undefined
            ? undefined
            : count(body.hang_after_tokens, 'hang_after_tokens');
        const crashIn = body.crash_in_ms === undefined ? undefined : count(body.crash_in_ms, 'crash_in_ms');
        if (body.rate_503 !== undefined) rates.rate503 = rate(body.rate_503, 'rate_503');
        if (body.rate_429 !== undefined) rates.rate429 = rate(body.rate_429, 'rate_429');
        const total = core.metrics.generationTokens;
        if (crashAfter !== undefined) cfg.tokenFaults.arm('crash', crashAfter, total);
        if (hangAfter !== undefined) cfg.tokenFaults.arm('hang', hangAfter, total);
        if (crashIn !== undefined) cfg.after(() => fault('crash'), crashIn);
        if (body?.fault !== undefined) {
          if (body.fault !== 'crash' && body.fault !== 'dead' && body.fault !== 'hang')
            throw badRequest('fault: must be crash, dead or hang');
          sendJson(res, 200, { fault: body.fault });
          return fault(body.fault);
        }
        return sendJson(res, 200, { rate_503: rates.rate503, rate_429: rates.rate429 });
      }
      case 'POST /tokenize': {
        const body = (await readJson(req)) as Record<string, unknown>;
        const kind: Kind = body?.messages !== undefined ? 'chat' : 'completion';
        const tokens =
          kind === 'completion' && typeof body.prompt === 'string' && body.add_special_tokens === false
            ? encodePrompt(body.prompt).slice(1)
            : promptIds(kind, body);
        return sendJson(res, 200, { count: tokens.length, max_model_len: cfg.maxModelLen, tokens });
      }
      case 'POST /detokenize': {
        const body = (await readJson(req)) as { tokens?: unknown };
        const t = body?.tokens;
        if (!Array.isArray(t) || !t.every((x) => Number.isInteger(x)))
          throw badRequest('tokens: must be a list of token ids');
        return sendJson(res, 200, { prompt: decode(t as number[]) });
      }
      default:
        if (
          [
            '/health',
            '/version',
            '/v1/models',
            '/metrics',
            '/v1/completions',
            '/v1/chat/completions',
            '/tokenize',
            '/detokenize',
          ].includes(path)
        )
          return sendJson(res, 405, { detail: 'Method Not Allowed' });
        return sendJson(res, 404, { detail: 'Not Found' });
    }
  }

  const server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const he = e instanceof HttpError ? e : new HttpError(500, 'InternalServerError', String(e));
      if (he.status >= 500) log.error('request failed', { err: String(e) });
      if (res.headersSent) {
        if (!res.writableEnded) res.end(`data: ${JSON.stringify(errorBody(he))}\n\ndata: [DONE]\n\n`);
      } else sendJson(res, he.status, errorBody(he));
    });
  });
  return {
    server,
    fault,
  };
}
