/**
 * OpenAI's Files and Batches API over corral's offline batches (controller/batch/):
 *   POST /v1/files                  multipart/form-data with `purpose=batch` and `file` (what the `openai` SDK's
 *                                   files.create sends), or the raw JSONL as the body (`?purpose=batch&filename=`)
 *   GET  /v1/files/{id}             the file object
 *   GET  /v1/files/{id}/content     the file's JSONL; a batch's output_file_id (every line's result, in input
 *                                   order) and error_file_id (the failed lines only) are files too
 *   POST /v1/batches                {"input_file_id", "endpoint", "completion_window": "24h", "metadata"}
 *   GET  /v1/batches/{id}           the batch object, with corral's `progress` (in_progress, pending) beside
 *                                   OpenAI's request_counts
 *   GET  /v1/batches?after=&limit=  the caller's batches, newest first (limit 1..100, default 20)
 *   POST /v1/batches/{id}/cancel
 * Every route needs the caller to be granted the `batch` class (403 otherwise); ids of other tenants are 404.
 * This file only translates: it answers a Reply for the server to send.
 */
import type { IncomingMessage } from 'node:http';
import type { Admission } from '../admission/admission.ts';
import type { BatchApi } from '../batch/batch-service.ts';
import { COMPLETION_WINDOW, errorFileId, outputFileId } from '../batch/batch-service.ts';
import { isTerminal, progressOf } from '../batch/batch-state.ts';
import type { BatchRecord, FileRecord } from '../batch/batch-store.ts';
import { HttpError } from './http-errors.ts';
import { isObject, optString, typeError } from './json-fields.ts';
import { readBody, readJsonBody } from './read-body.ts';

export type Reply =
  | { t: 'json'; status: number; body: unknown }
  | { t: 'jsonl'; chunks: AsyncIterable<string> };

/** Room for the multipart envelope around a file of maxFileBytes. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
const MAX_JSON_BYTES = 64 * 1024;
const RAW_TYPES = ['application/jsonl', 'application/x-ndjson', 'application/octet-stream', 'text/plain'];

export function isBatchPath(pathname: string): boolean {
  return pathname === '/v1/files' || pathname.startsWith('/v1/files/') || pathname.startsWith('/v1/batches');
}

export async function serveBatchRoute(
  req: IncomingMessage,
  url: URL,
  apiKey: string | undefined,
  api: BatchApi,
  admission: Admission,
): Promise<Reply> {
  const who = admission.identify(apiKey, 'batch');
  const parts = url.pathname.split('/').slice(2).map(decodePart); // ['files' | 'batches', id?, action?]
  const [kind, id, action] = parts;
  const route = `${req.method} ${kind}${id === undefined ? '' : '/{id}'}${action === undefined ? '' : `/${action}`}`;
  switch (route) {
    case 'POST files':
      return json(
        200,
        fileJson(await api.uploadFile(who, await readUpload(req, url, api.config.maxFileBytes))),
      );
    case 'GET files/{id}':
      return json(200, fileJson(await api.getFile(who, id as string)));
    case 'GET files/{id}/content':
      return { t: 'jsonl', chunks: await api.fileContent(who, id as string) };
    case 'POST batches':
      return json(
        200,
        batchJson(await api.createBatch(who, newBatch(await readJsonBody(req, MAX_JSON_BYTES)))),
      );
    case 'GET batches': {
      const page = await api.listBatches(who, listPage(url));
      const data = page.batches.map(batchJson);
      return json(200, {
        object: 'list',
        data,
        first_id: page.batches[0]?.id ?? null,
        last_id: page.batches.at(-1)?.id ?? null,
        has_more: page.hasMore,
      });
    }
    case 'GET batches/{id}':
      return json(200, batchJson(await api.getBatch(who, id as string)));
    case 'POST batches/{id}/cancel':
      return json(200, batchJson(await api.cancelBatch(who, id as string)));
    default:
      throw new HttpError(404, `Not found: ${req.method} ${url.pathname}`);
  }
}

function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, `The path segment '${part}' is not valid percent-encoding.`);
  }
}

function listPage(url: URL): { after?: string; limit: number } {
  const raw = url.searchParams.get('limit');
  const limit = raw === null ? 20 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new HttpError(400, `Invalid 'limit': must be an integer from 1 to 100, got '${raw}'.`, 'limit');
  const after = url.searchParams.get('after');
  return after ? { after, limit } : { limit };
}

function json(status: number, body: unknown): Reply {
  return { t: 'json', status, body };
}

async function readUpload(
  req: IncomingMessage,
  url: URL,
  maxFileBytes: number,
): Promise<{ filename: string; purpose: string; content: Buffer }> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'multipart/form-data') {
    const body = await readBody(req, maxFileBytes + MULTIPART_OVERHEAD_BYTES);
    let form: FormData;
    try {
      form = await new Response(body, {
        headers: { 'content-type': req.headers['content-type'] ?? '' },
      }).formData();
    } catch (e) {
      throw new HttpError(400, `The multipart body could not be parsed (${(e as Error).message}).`);
    }
    const purpose = form.get('purpose');
    const file = form.get('file');
    if (typeof purpose !== 'string')
      throw new HttpError(400, "Missing required parameter: 'purpose'.", 'purpose');
    if (file === null || typeof file === 'string')
      throw new HttpError(400, "Missing required parameter: 'file' (a file part).", 'file');
    return { filename: file.name || 'batch.jsonl', purpose, content: Buffer.from(await file.arrayBuffer()) };
  }
  if (RAW_TYPES.includes(type) || type === '') {
    return {
      filename: url.searchParams.get('filename') ?? 'batch.jsonl',
      purpose: url.searchParams.get('purpose') ?? 'batch',
      content: await readBody(req, maxFileBytes),
    };
  }
  throw new HttpError(
    415,
    `Content-Type ${type} is not accepted for a file; send multipart/form-data (purpose, file) or the JSONL itself (application/jsonl).`,
  );
}

function newBatch(body: unknown) {
  if (!isObject(body)) throw typeError('body', 'a JSON object', body);
  const inputFileId = optString(body, 'input_file_id');
  const endpoint = optString(body, 'endpoint');
  const completionWindow = optString(body, 'completion_window');
  if (!inputFileId) throw new HttpError(400, "Missing required parameter: 'input_file_id'.", 'input_file_id');
  if (!endpoint) throw new HttpError(400, "Missing required parameter: 'endpoint'.", 'endpoint');
  const metadata = body.metadata ?? null;
  if (metadata !== null) {
    if (!isObject(metadata)) throw typeError('metadata', 'an object', metadata);
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw typeError(`metadata.${k}`, 'a string', v);
  }
  return {
    inputFileId,
    endpoint,
    completionWindow: completionWindow ?? COMPLETION_WINDOW,
    metadata: metadata as Record<string, string> | null,
  };
}

const seconds = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));

export function fileJson(f: FileRecord): object {
  return {
    id: f.id,
    object: 'file',
    bytes: f.bytes,
    created_at: seconds(f.createdAt),
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed',
  };
}

export function batchJson(b: BatchRecord): object {
  const ended = isTerminal(b.status) && b.status !== 'failed';
  return {
    id: b.id,
    object: 'batch',
    endpoint: b.url,
    errors: b.errors
      ? { object: 'list', data: [{ code: 'batch_failed', message: b.errors, param: null, line: null }] }
      : null,
    input_file_id: b.inputFileId,
    completion_window: COMPLETION_WINDOW,
    status: b.status,
    output_file_id: ended ? outputFileId(b.id) : null,
    error_file_id: ended && b.counts.failed > 0 ? errorFileId(b.id) : null,
    created_at: seconds(b.createdAt),
    in_progress_at: seconds(b.at.in_progress),
    expires_at: seconds(b.expiresAt),
    finalizing_at: null,
    completed_at: seconds(b.at.completed),
    failed_at: seconds(b.at.failed),
    expired_at: seconds(b.at.expired),
    cancelling_at: seconds(b.at.cancelling),
    cancelled_at: seconds(b.at.cancelled),
    request_counts: { total: b.counts.total, completed: b.counts.completed, failed: b.counts.failed },
    metadata: b.metadata,
    progress: progressOf(b.status, b.counts),
  };
}
