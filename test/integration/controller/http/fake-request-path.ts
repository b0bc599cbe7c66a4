/**
 * A RequestPath that plays a script per request, recording what the HTTP server handed it, so the server's
 * translation and framing are tested over real HTTP without a cluster.
 */
import { afterAll, beforeAll } from 'vitest';
import { CorralError } from '../../../../common/errors.ts';
import { createLogger } from '../../../../common/log.ts';
import type { Admission } from '../../../../controller/admission/admission.ts';
import { type HttpServer, startHttpServer } from '../../../../controller/http/http-server.ts';
import type { HttpRequestContext, RequestPath } from '../../../../controller/http/request-path.ts';
import {
  FinishReason,
  type GenerateEvent,
  type GenerateRequest,
  type ModelInfo,
} from '../../../../proto/gen/corral/v1/inference.ts';

export type Step =
  | { t: 'event'; event: GenerateEvent['event'] }
  /** Blocks until the request's signal aborts, then throws as the real path does. */
  | { t: 'hang' }
  | { t: 'throw'; error: unknown };

export interface Call {
  req: GenerateRequest;
  ctx: HttpRequestContext;
  aborted: Promise<void>;
}

export class FakeRequestPath implements RequestPath {
  readonly calls: Call[] = [];
  script: (req: GenerateRequest) => Step[] = (req) => answer(req, ['Hello', ', ', 'world'], 5);
  models: ModelInfo[] = [{ id: 'm', maxModelLen: 4096, readyReplicas: 1, desiredReplicas: 1 }];

  listModels(): ModelInfo[] {
    return this.models;
  }

  async *generate(req: GenerateRequest, ctx: HttpRequestContext): AsyncGenerator<GenerateEvent> {
    const aborted = new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    this.calls.push({ req, ctx, aborted });
    for (const step of this.script(req)) {
      if (ctx.signal.aborted) throw new CorralError('cancelled', 'cancelled by the client');
      if (step.t === 'throw') throw step.error;
      if (step.t === 'hang') {
        await aborted;
        throw new CorralError('cancelled', 'cancelled by the client');
      }
      yield { requestId: req.requestId, event: step.event };
      await new Promise((r) => setImmediate(r));
    }
  }
}

/** Started, one delta per piece, Finished with usage (prompt tokens given). */
export function answer(
  req: GenerateRequest,
  pieces: string[],
  promptTokens: number,
  reason = FinishReason.FINISH_REASON_STOP,
): Step[] {
  return [
    {
      t: 'event',
      event: { $case: 'started', value: { model: req.model, promptTokens, promptTokenIds: [] } },
    },
    ...pieces.map(
      (text, i): Step => ({
        t: 'event',
        event: { $case: 'delta', value: { text, index: i, tokenIds: [], tokenCount: 1 } },
      }),
    ),
    {
      t: 'event',
      event: {
        $case: 'finished',
        value: {
          reason,
          stopReason: '',
          usage: {
            promptTokens,
            completionTokens: pieces.length,
            totalTokens: promptTokens + pieces.length,
          },
        },
      },
    },
  ];
}

/**
 * The HTTP server on 127.0.0.1 in front of `path`, started in the calling file's beforeAll and closed in its
 * afterAll. Returns its base URL (`http://host:port`), to read once the server has started.
 */
export function usePathServer(
  path: FakeRequestPath,
  options: { admission: Admission; maxBodyBytes?: number },
): () => string {
  let server: HttpServer | undefined;
  beforeAll(async () => {
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      path,
      log: createLogger('http-test', { level: 'error' }),
      ...options,
    });
  });
  afterAll(async () => {
    await server?.close();
  });
  return () => {
    if (server === undefined) {
      throw new Error(
        'usePathServer(): the server starts in beforeAll, so read its address in a hook or a test',
      );
    }
    return `http://${server.address}`;
  };
}
