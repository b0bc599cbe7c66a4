/**
 * What the HTTP front door needs from the controller: the same request path the gRPC Inference service uses
 * (controller/gateway/request-path.ts satisfies it structurally), so validation, admission, routing and relay
 * exist once. The HTTP server only translates OpenAI JSON to a GenerateRequest and events back to OpenAI JSON.
 */
import type { GenerateEvent, GenerateRequest, ModelInfo } from '../../proto/gen/corral/v1/inference.ts';

export interface HttpRequestContext {
  /** Aborted when the HTTP client disconnects: the path cancels the request (and the engine's). */
  signal: AbortSignal;
  /** Absolute deadline, epoch ms; absent when the client set none. */
  deadline?: number;
  /** The W3C `traceparent` header, passed through unparsed. */
  traceparent?: string;
  /** The `X-Request-Id` header; the request carries it as request_id too. */
  requestId?: string;
  /** The `Authorization: Bearer` key, for admission to map to a tenant. */
  apiKey?: string;
}

export interface RequestPath {
  /**
   * Runs one request: admission, queue/dispatch, relay. Yields Started, TextDeltas, Finished. Throws a
   * CorralError (or a gRPC ServiceError) before the first event for a refusal, or mid-stream for a failure.
   */
  generate(req: GenerateRequest, ctx: HttpRequestContext): AsyncIterable<GenerateEvent>;
  listModels(): ModelInfo[] | Promise<ModelInfo[]>;
}
