/**
 * The OpenAI-compatible HTTP front door: `POST /v1/chat/completions`, `POST /v1/completions`,
 * `GET /v1/models`, `GET /health`, and offline batches' `/v1/files` and `/v1/batches` (batch-routes.ts). It
 * only translates (openai-request.ts, openai-response.ts) and frames; every request runs through the
 * controller's RequestPath, the same one gRPC Inference uses.
 *
 * The API key is `Authorization: Bearer <key>` (what OpenAI SDKs send) or `X-Api-Key`. Completions hand it
 * to the path, whose admission decides; `/v1/models` is authenticated here with the same admission.
 * `/health` stays open: probes and load balancers carry no key.
 *
 * node:http and no framework: four routes, a size-limited JSON body and SSE need nothing more, and owning the
 * response lets a refusal that comes before the first event still be a plain JSON error with its own status.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../common/log.ts';
import type { Admission } from '../admission/admission.ts';
import { apiKeyOf } from '../admission/api-key.ts';
import type { BatchApi } from '../batch/batch-service.ts';
import { isBatchPath, type Reply, serveBatchRoute } from './batch-routes.ts';
import { HttpError, mapError } from './http-errors.ts';
import { type Endpoint, parseOpenAiRequest } from './openai-request.ts';
import { modelList, OpenAiResponse } from './openai-response.ts';
import { readJsonBody } from './read-body.ts';
import type { HttpRequestContext, RequestPath } from './request-path.ts';

/** The documented request body limit: 4 MiB holds a ~1M-character prompt, beyond any served context. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Longer ids are refused rather than cut, so the id a client logs is the one corral logs. */
const MAX_REQUEST_ID_LENGTH = 256;

export interface HttpServerOptions {
  host: string;
  /** 0 picks a free port; the bound one is in `address`. */
  port: number;
  path: RequestPath;
  /** Authenticates the routes that answer without running a request (`/v1/models`). */
  admission: Admission;
  log: Logger;
  maxBodyBytes?: number;
  /** Offline batches (`/v1/files`, `/v1/batches`, batch-routes.ts); absent: those routes are 404. */
  batches?: BatchApi;
}

export interface HttpServer {
  /** `host:port` actually bound. */
  address: string;
  /** Stops accepting; requests still running get `graceMs` to finish, then are cancelled. */
  close(graceMs?: number): Promise<void>;
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const inFlight = new Set<{ abort: AbortController; done: Promise<void> }>();
  const server = createServer((req, res) => {
    const abort = new AbortController();
    const entry = { abort, done: Promise.resolve() };
    entry.done = serve(req, res, abort, { ...options, maxBodyBytes }).finally(() => inFlight.delete(entry));
    inFlight.add(entry);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    address: `${host}:${bound.port}`,
    close: async (graceMs = 0) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const running = Promise.all([...inFlight].map((e) => e.done));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const e of inFlight) e.abort.abort();
      await running;
      server.closeAllConnections();
      await closed;
    },
  };
}

type ServeOptions = HttpServerOptions & { maxBodyBytes: number };

async function serve(req: IncomingMessage, res: ServerResponse, abort: AbortController, o: ServeOptions) {
  const started = Date.now();
  // A client that goes away before the response ends cancels the request (and the engine's work).
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const url = new URL(req.url ?? '/', 'http://localhost');
  let requestId = '';
  try {
    requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);
    if (o.batches && isBatchPath(url.pathname))
      await sendReply(res, await serveBatch(req, url, o, o.batches));
    else await route(req, res, url.pathname, requestId, abort.signal, o);
  } catch (e) {
    if (!res.headersSent) {
      const { status, headers, body } = mapError(e);
      // A body we stopped reading (413) would otherwise be parsed as the next request on this connection.
      if (e instanceof HttpError && e.status === 413) headers.connection = 'close';
      sendJson(res, status, body, headers);
    } else if (!res.writableEnded) {
      res.end();
    }
    if (!(e instanceof HttpError)) {
      o.log.info('http request failed', { requestId, error: e instanceof Error ? e.message : String(e) });
    }
  } finally {
    o.log.info('http request', {
      method: req.method,
      path: url.pathname,
      status: res.statusCode,
      requestId,
      ms: Date.now() - started,
      aborted: abort.signal.aborted,
    });
  }
}

const ROUTES: Record<string, { method: string; endpoint?: Endpoint }> = {
  '/v1/chat/completions': { method: 'POST', endpoint: 'chat' },
  '/v1/completions': { method: 'POST', endpoint: 'completion' },
  '/v1/models': { method: 'GET' },
  '/health': { method: 'GET' },
};

async function route(
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  requestId: string,
  signal: AbortSignal,
  o: ServeOptions,
): Promise<void> {
  const r = ROUTES[pathname];
  if (!r) throw new HttpError(404, `Not found: ${req.method} ${pathname}`);
  if (req.method !== r.method) {
    throw new HttpError(405, `Method ${req.method} not allowed on ${pathname}; use ${r.method}.`, null, {
      allow: r.method,
    });
  }
  if (pathname === '/health') {
    res.writeHead(200).end();
    return;
  }
  if (pathname === '/v1/models') {
    o.admission.identify(headerContext(req).apiKey, undefined);
    sendJson(res, 200, modelList(await o.path.listModels(), Math.floor(Date.now() / 1000)));
    return;
  }
  const body = await readJsonBody(req, o.maxBodyBytes);
  const parsed = parseOpenAiRequest(r.endpoint ?? 'chat', body, requestId);
  if (!parsed.ok) throw parsed.error;
  const p = parsed.value;
  o.log.info('http generate', { requestId, model: p.model, stream: p.stream, user: p.user });
  const ctx: HttpRequestContext = { signal, requestId, ...headerContext(req) };
  const response = new OpenAiResponse({
    endpoint: p.endpoint,
    requestId,
    model: p.model,
    created: Math.floor(Date.now() / 1000),
    includeUsage: p.includeUsage,
  });
  const events = o.path.generate(p.generate, ctx);
  if (!p.stream) {
    for await (const event of events) response.chunks(event);
    if (!response.finished) throw new Error('the request path ended without a Finished event');
    sendJson(res, 200, response.body());
    return;
  }
  try {
    for await (const event of events) {
      // Headers go out with the first event, so a refusal before it is still a JSON error with its status.
      if (!res.headersSent) {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          'x-accel-buffering': 'no',
        });
      }
      for (const chunk of response.chunks(event)) await write(res, `data: ${JSON.stringify(chunk)}\n\n`);
    }
    if (!response.finished) throw new Error('the request path ended without a Finished event');
  } catch (e) {
    if (!res.headersSent || signal.aborted) throw e;
    // Mid-stream the status is already 200: OpenAI's and vLLM's convention is an error event, then [DONE].
    o.log.info('stream failed', { requestId, error: e instanceof Error ? e.message : String(e) });
    await write(res, `data: ${JSON.stringify(mapError(e).body)}\n\n`);
  }
  await write(res, 'data: [DONE]\n\n');
  res.end();
}

function serveBatch(req: IncomingMessage, url: URL, o: ServeOptions, batches: BatchApi): Promise<Reply> {
  return serveBatchRoute(req, url, headerContext(req).apiKey, batches, o.admission);
}

async function sendReply(res: ServerResponse, reply: Reply): Promise<void> {
  if (reply.t === 'json') return sendJson(res, reply.status, reply.body);
  res.writeHead(200, { 'content-type': 'application/jsonl' });
  for await (const chunk of reply.chunks) await write(res, chunk);
  res.end();
}

/** Honours the client's `X-Request-Id` (vLLM's `--enable-request-id-headers`), else makes one. */
function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  if (given === undefined || given === '') return randomUUID();
  if (Array.isArray(given)) throw new HttpError(400, 'X-Request-Id must be given once.', 'X-Request-Id');
  if (given.length > MAX_REQUEST_ID_LENGTH) {
    throw new HttpError(
      400,
      `X-Request-Id is longer than ${MAX_REQUEST_ID_LENGTH} characters.`,
      'X-Request-Id',
    );
  }
  return given;
}

function headerContext(req: IncomingMessage): { apiKey?: string; traceparent?: string } {
  const out: { apiKey?: string; traceparent?: string } = {};
  const apiKey = apiKeyOf(req.headers.authorization, singleHeader(req, 'x-api-key'));
  if (apiKey !== undefined) out.apiKey = apiKey;
  const tp = req.headers.traceparent;
  if (typeof tp === 'string' && tp !== '') out.traceparent = tp;
  return out;
}

function singleHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (Array.isArray(v)) throw new HttpError(400, `${name} must be given once.`, name);
  return v;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Waits for the socket to drain, so a slow reader slows the request path instead of filling memory. */
async function write(res: ServerResponse, data: string): Promise<void> {
  if (res.destroyed) return;
  if (res.write(data)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
