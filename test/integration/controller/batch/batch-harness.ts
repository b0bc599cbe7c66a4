/** Submitting a batch straight to a controller's BatchApi, waiting for it and reading its results. */
import type { Admitted } from '../../../../controller/admission/admission.ts';
import type { OutputLine } from '../../../../controller/batch/batch-output.ts';
import { type BatchApi, outputFileId } from '../../../../controller/batch/batch-service.ts';
import type { BatchStatus } from '../../../../controller/batch/batch-state.ts';
import type { BatchRecord } from '../../../../controller/batch/batch-store.ts';
import { until } from '../fake-worker.ts';

export const WHO: Admitted = { tenant: 'default', weight: 1, cls: 'batch' };

/** A chat line of the OpenAI batch format. */
export function chatLine(customId: string, content: string, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'llama-3.1-8b-instruct', max_tokens: 8, messages: [{ role: 'user', content }], ...over },
  });
}

export async function submitBatch(api: BatchApi, lines: readonly string[], who = WHO): Promise<string> {
  const file = await api.uploadFile(who, {
    filename: 'in.jsonl',
    purpose: 'batch',
    content: Buffer.from(`${lines.join('\n')}\n`),
  });
  const b = await api.createBatch(who, {
    inputFileId: file.id,
    endpoint: '/v1/chat/completions',
    completionWindow: '24h',
    metadata: null,
  });
  return b.id;
}

export function batchWhere(
  api: BatchApi,
  id: string,
  what: string,
  ok: (b: BatchRecord) => boolean,
  who = WHO,
): Promise<BatchRecord> {
  return until(
    `batch ${id}: ${what}`,
    async () => {
      const b = await api.getBatch(who, id);
      return ok(b) ? b : undefined;
    },
    20_000,
  );
}

export function batchStatus(api: BatchApi, id: string, status: BatchStatus, who = WHO): Promise<BatchRecord> {
  return batchWhere(api, id, `status ${status}`, (b) => b.status === status, who);
}

/** The batch's output file, every line's result in input order. */
export async function outputLines(api: BatchApi, id: string, who = WHO): Promise<OutputLine[]> {
  let text = '';
  for await (const chunk of await api.fileContent(who, outputFileId(id))) text += chunk;
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as OutputLine);
}
