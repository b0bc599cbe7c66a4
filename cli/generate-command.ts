/** `corral generate --model M "prompt"`: streams a generation to stdout, its usage and timing to stderr. */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { GenerateEvent, GenerateRequest } from '../proto/gen/corral/v1/inference.ts';
import { FinishReason } from '../proto/gen/corral/v1/inference.ts';
import { type CommandSpec, intFlag, numberFlag, UsageError } from './args.ts';
import { inferenceClient } from './clients.ts';
import { resolveControllerAddress } from './endpoint.ts';

export const generateSpec: CommandSpec = {
  usage:
    'corral generate --model MODEL [--max-tokens N] [--temperature T] [--seed S] [--chat] [--addr HOST:PORT] PROMPT',
  options: {
    model: { type: 'string', short: 'm' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    seed: { type: 'string' },
    'request-id': { type: 'string' },
    'timeout-s': { type: 'string' },
    chat: { type: 'boolean' },
    addr: { type: 'string' },
  },
  positionals: true,
};

export function buildGenerateRequest(
  values: Record<string, unknown>,
  positionals: string[],
): GenerateRequest {
  const model = values.model;
  if (typeof model !== 'string' || model === '') throw new UsageError('--model is required');
  if (positionals.length === 0) throw new UsageError('a prompt is required (the last argument)');
  const text = positionals.join(' ');
  const seed = intFlag(values, 'seed');
  const temperature = numberFlag(values, 'temperature');
  return {
    model,
    requestId: typeof values['request-id'] === 'string' ? values['request-id'] : '',
    input: values.chat
      ? { $case: 'chat', value: { messages: [{ role: 'user', content: text }] } }
      : { $case: 'prompt', value: text },
    maxTokens: intFlag(values, 'max-tokens'),
    sampling: { temperature, seed, stop: [], ignoreEos: false, minTokens: 0 },
    priority: 0,
    returnTokenIds: false,
  };
}

export async function runGenerate(
  values: Record<string, unknown>,
  positionals: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const request = buildGenerateRequest(values, positionals);
  const address = resolveControllerAddress(values.addr as string | undefined);
  const timeoutS = numberFlag(values, 'timeout-s') ?? 600;
  const client = inferenceClient(address);
  const call = client.generate(request, new Metadata(), { deadline: Date.now() + timeoutS * 1000 });
  const stopOnSigint = () => call.cancel();
  process.once('SIGINT', stopOnSigint);
  try {
    for await (const event of call as AsyncIterable<GenerateEvent>) {
      const e = event.event;
      if (e?.$case === 'delta') out.write(e.value.text);
      if (e?.$case === 'finished') {
        const u = e.value.usage;
        const t = e.value.timing;
        out.write('\n');
        err.write(
          `[${event.requestId}] finish=${finishName(e.value.reason)} prompt_tokens=${u?.promptTokens ?? 0} ` +
            `completion_tokens=${u?.completionTokens ?? 0} ttft_ms=${t?.timeToFirstTokenMs.toFixed(0) ?? '?'} ` +
            `total_ms=${t?.totalMs.toFixed(0) ?? '?'}\n`,
        );
      }
    }
    return 0;
  } catch (e) {
    const se = e as ServiceError;
    err.write(
      `\nerror: ${status[se.code] ?? se.code}: ${se.details || se.message} (controller ${address})\n`,
    );
    return 1;
  } finally {
    process.off('SIGINT', stopOnSigint);
    client.close();
  }
}

function finishName(reason: FinishReason): string {
  switch (reason) {
    case FinishReason.FINISH_REASON_STOP:
      return 'stop';
    case FinishReason.FINISH_REASON_LENGTH:
      return 'length';
    case FinishReason.FINISH_REASON_CANCELLED:
      return 'cancelled';
    default:
      return 'unknown';
  }
}
