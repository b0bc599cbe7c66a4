/** `corral generate --model M "prompt"`: streams a generation to stdout, its usage and timing to stderr. */
import { status } from '@grpc/grpc-js';
import { CorralClient, type GenerateParams } from '../client/corral-client.ts';
import { CorralClientError } from '../client/errors.ts';
import { type CommandSpec, intFlag, numberFlag, UsageError } from './args.ts';
import { resolveApiKey, resolveControllerAddress } from './endpoint.ts';

export const generateSpec: CommandSpec = {
  usage:
    'corral generate --model MODEL [--max-tokens N] [--temperature T] [--seed S] [--chat] [--request-id ID] ' +
    '[--timeout-s S] [--addr HOST:PORT] [--api-key KEY] PROMPT',
  options: {
    model: { type: 'string', short: 'm' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    seed: { type: 'string' },
    'request-id': { type: 'string' },
    'timeout-s': { type: 'string' },
    chat: { type: 'boolean' },
    addr: { type: 'string' },
    'api-key': { type: 'string' },
  },
  positionals: true,
};

export function generateParams(values: Record<string, unknown>, positionals: string[]): GenerateParams {
  const model = values.model;
  if (typeof model !== 'string' || model === '') throw new UsageError('--model is required');
  if (positionals.length === 0) throw new UsageError('a prompt is required (the last argument)');
  const text = positionals.join(' ');
  return {
    model,
    ...(values.chat ? { messages: [{ role: 'user' as const, content: text }] } : { prompt: text }),
    maxTokens: intFlag(values, 'max-tokens'),
    temperature: numberFlag(values, 'temperature'),
    seed: intFlag(values, 'seed'),
  };
}

export async function runGenerate(values: Record<string, unknown>, positionals: string[]): Promise<number> {
  const params = generateParams(values, positionals);
  const address = resolveControllerAddress(values.addr as string | undefined);
  const client = new CorralClient({
    address,
    apiKey: resolveApiKey(values['api-key'] as string | undefined),
  });
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  try {
    const requestId = values['request-id'] as string | undefined;
    const timeoutMs = (numberFlag(values, 'timeout-s') ?? 600) * 1000;
    for await (const e of client.generate(params, { requestId, timeoutMs, signal: abort.signal })) {
      if (e.type === 'delta') process.stdout.write(e.text);
      if (e.type === 'finished') {
        process.stdout.write('\n');
        process.stderr.write(
          `[${e.requestId}] finish=${e.reason} prompt_tokens=${e.usage.promptTokens} ` +
            `completion_tokens=${e.usage.completionTokens} ttft_ms=${e.timing.timeToFirstTokenMs.toFixed(0)} ` +
            `total_ms=${e.timing.totalMs.toFixed(0)}\n`,
        );
      }
    }
    return 0;
  } catch (e) {
    const error = CorralClientError.from(e);
    process.stderr.write(`\nerror: ${error.codeName}: ${error.details} (controller ${address})\n`);
    if (error.code === status.UNAUTHENTICATED)
      process.stderr.write('  the API key comes from --api-key, $CORRAL_API_KEY or .corral/local/api-key\n');
    if (error.retryAfterMs !== undefined)
      process.stderr.write(`  retry in ${(error.retryAfterMs / 1000).toFixed(1)} s\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    client.close();
  }
}
