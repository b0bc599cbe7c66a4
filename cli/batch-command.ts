/**
 * `corral batch`: offline batches over the controller's OpenAI-compatible HTTP API (/v1/files, /v1/batches):
 *   corral batch submit FILE.jsonl [--model M] [--endpoint URL]   upload the file, create the batch, print its id
 *   corral batch status ID                                        progress: total, completed, failed, in the
 *                                                                 queue, not fed yet
 *   corral batch results ID [-o out.jsonl] [--errors]             one result line per input line (or the failed ones)
 *   corral batch cancel ID
 * FILE is OpenAI's batch input format; `--model M` fills in the model of lines whose body names none.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type CommandSpec, UsageError } from './args.ts';
import { resolveApiKey, resolveHttpAddress } from './endpoint.ts';

export const batchSpec: CommandSpec = {
  usage:
    'corral batch submit FILE.jsonl [--model M] [--endpoint /v1/chat/completions|/v1/completions] | status ID | results ID [-o FILE] [--errors] | cancel ID   [--http HOST:PORT] [--api-key KEY] [--json]',
  options: {
    model: { type: 'string' },
    endpoint: { type: 'string' },
    output: { type: 'string', short: 'o' },
    errors: { type: 'boolean' },
    http: { type: 'string' },
    'api-key': { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: true,
};

/** The batch object fields the CLI prints (OpenAI's, plus corral's `progress`). */
export interface BatchView {
  id: string;
  status: string;
  output_file_id: string | null;
  error_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number };
  progress?: { in_progress: number; pending: number };
  errors: { data: { message: string }[] } | null;
}

/** The file with `model` set in the body of every line that parses and names none; other lines untouched. */
export function fillModel(text: string, model: string): string {
  return text
    .split('\n')
    .map((line) => {
      try {
        const v = JSON.parse(line) as { body?: unknown };
        const body = v.body;
        if (typeof body !== 'object' || body === null || Array.isArray(body) || 'model' in body) return line;
        return JSON.stringify({ ...v, body: { ...body, model } });
      } catch {
        return line; // a bad line goes as it is: the controller reports it with its line number
      }
    })
    .join('\n');
}

/** The url of the file's first line that names one (a batch has one endpoint), else chat completions. */
export function endpointOf(text: string): string {
  for (const line of text.split('\n')) {
    try {
      const url = (JSON.parse(line) as { url?: unknown }).url;
      if (typeof url === 'string') return url;
    } catch {
      // not a request line; the next one may say
    }
  }
  return '/v1/chat/completions';
}

export function formatBatch(b: BatchView): string {
  const c = b.request_counts;
  const p = b.progress;
  const queue = p ? `  in the queue ${p.in_progress}  not sent ${p.pending}` : '';
  const lines = [
    `${b.id}  ${b.status}  total ${c.total}  completed ${c.completed}  failed ${c.failed}${queue}`,
  ];
  for (const e of b.errors?.data ?? []) lines.push(`  error: ${e.message}`);
  return `${lines.join('\n')}\n`;
}

export async function runBatch(
  values: Record<string, unknown>,
  positionals: string[],
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  try {
    return await batch(values, positionals, out);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  }
}

async function batch(
  values: Record<string, unknown>,
  positionals: string[],
  out: NodeJS.WritableStream,
): Promise<number> {
  const [action, arg] = positionals;
  if (!action || !arg || positionals.length > 2) throw new UsageError(`usage: ${batchSpec.usage}`);
  const api = new HttpApi(resolveHttpAddress(values.http as string | undefined), values['api-key'] as string);
  const show = (b: BatchView) => out.write(values.json ? `${JSON.stringify(b)}\n` : formatBatch(b));
  switch (action) {
    case 'submit': {
      let text = readFileSync(arg, 'utf8');
      if (typeof values.model === 'string') text = fillModel(text, values.model);
      const name = encodeURIComponent(basename(arg));
      const file = (await api.call(
        'POST',
        `/v1/files?purpose=batch&filename=${name}`,
        text,
        'application/jsonl',
      )) as {
        id: string;
      };
      const endpoint = typeof values.endpoint === 'string' ? values.endpoint : endpointOf(text);
      const b = (await api.call(
        'POST',
        '/v1/batches',
        JSON.stringify({ input_file_id: file.id, endpoint, completion_window: '24h' }),
        'application/json',
      )) as BatchView;
      show(b);
      return 0;
    }
    case 'status':
      show((await api.call('GET', `/v1/batches/${encodeURIComponent(arg)}`)) as BatchView);
      return 0;
    case 'cancel':
      show((await api.call('POST', `/v1/batches/${encodeURIComponent(arg)}/cancel`)) as BatchView);
      return 0;
    case 'results': {
      const fileId = `${values.errors ? 'file-errors-' : 'file-output-'}${arg}`;
      const text = (await api.call('GET', `/v1/files/${encodeURIComponent(fileId)}/content`)) as string;
      if (typeof values.output === 'string') writeFileSync(values.output, text);
      else out.write(text);
      return 0;
    }
    default:
      throw new UsageError(`unknown batch action '${action}'\nusage: ${batchSpec.usage}`);
  }
}

/** The controller's HTTP API; a refusal or an unreachable controller is a CliError with the reason. */
class HttpApi {
  private readonly apiKey: string | undefined;

  constructor(
    private readonly address: string,
    apiKey: string | undefined,
  ) {
    this.apiKey = resolveApiKey(apiKey);
  }

  async call(method: string, path: string, body?: string, contentType?: string): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (contentType) headers['content-type'] = contentType;
    let res: Response;
    try {
      res = await fetch(`http://${this.address}${path}`, { method, headers, ...(body ? { body } : {}) });
    } catch (e) {
      const why = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      throw new CliError(
        `cannot reach the controller's HTTP API at ${this.address}: ${why} (--http or CORRAL_HTTP)`,
      );
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error: { message: string } }).error.message;
      } catch {
        // not OpenAI error JSON: show the body as it is
      }
      throw new CliError(`${method} ${path}: ${res.status} ${message}`);
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0];
    return type === 'application/json' ? JSON.parse(text) : text; // the results are application/jsonl
  }
}

/** A failure to report in one line (exit 1), not a usage problem. */
export class CliError extends Error {
  override name = 'CliError';
}
