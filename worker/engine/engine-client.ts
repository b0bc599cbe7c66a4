/**
 * The engine's HTTP API as the worker uses it, behind a narrow interface (tests swap it; the real one is
 * Node's fetch). Addresses are `host:port` on the engine host, normally loopback.
 */

export interface EngineHttpClient {
  /** GET /health: the HTTP status, or throws when the port is not open yet (vLLM opens it only once loaded). */
  health(address: string, timeoutMs: number): Promise<number>;
  /** GET /metrics: Prometheus text. Throws on a non-200 answer or a connection error. */
  metrics(address: string, timeoutMs: number): Promise<string>;
  /** GET /v1/models: the first model's max_model_len, if the engine reports one. */
  maxModelLen(address: string, timeoutMs: number): Promise<number | undefined>;
  /** GET /version: `{"version":"x.y.z"}`. */
  version(address: string, timeoutMs: number): Promise<string | undefined>;
  /** POST a streaming request; the caller reads `response.body` and aborts through `signal`. */
  post(
    address: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Response>;
}

export function fetchEngineClient(apiKey?: string): EngineHttpClient {
  const auth: Record<string, string> = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  return {
    async health(address, timeoutMs) {
      const res = await fetch(`http://${address}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      return res.status;
    },
    async metrics(address, timeoutMs) {
      const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
      return text;
    },
    async maxModelLen(address, timeoutMs) {
      const res = await fetch(`http://${address}/v1/models`, {
        headers: auth,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = (await res.json()) as { data?: { max_model_len?: unknown }[] };
      const len = body.data?.[0]?.max_model_len;
      return typeof len === 'number' ? len : undefined;
    },
    async version(address, timeoutMs) {
      const res = await fetch(`http://${address}/version`, { signal: AbortSignal.timeout(timeoutMs) });
      const body = (await res.json()) as { version?: unknown };
      return typeof body.version === 'string' ? body.version : undefined;
    },
    post(address, path, body, headers, signal) {
      return fetch(`http://${address}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...auth, ...headers },
        body: JSON.stringify(body),
        signal,
      });
    },
  };
}
