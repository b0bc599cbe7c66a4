/**
 * generateDurably against two small Inference servers standing in for two controller replicas that share one
 * request log (each request: Started, 6 one-token deltas, Finished). A replica can break a stream with
 * UNAVAILABLE after some deltas (what a dying controller's closeStreams does), refuse Generate outright, or
 * be gone (a closed port). The client must carry on on the other replica with the same request id: Generate
 * when nothing arrived, Resume after the tokens it has; every token once, one Started; other errors are the
 * caller's. A replica that hangs (SIGSTOP: its connection open, answering nothing) runs in its own process
 * (hung-replica.ts); the client's keepalive pings go unanswered and the stream carries on on the other replica.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, type ServerWritableStream, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CorralClient, type GenerationEvent } from '../../../client/corral-client.ts';
import { generateDurably } from '../../../client/durable-generate.ts';
import type { CorralClientError } from '../../../client/errors.ts';
import {
  FinishReason,
  type GenerateEvent,
  type GenerateRequest,
  InferenceService,
  type ResumeRequest,
} from '../../../proto/gen/corral/v1/inference.ts';

const TOKENS = 6;

interface Replica {
  server: Server;
  address: string;
  calls: string[];
  /** Break every stream with UNAVAILABLE after this many deltas. */
  breakAfter: number | undefined;
  /** Refuse Generate at once with this status. */
  refuse: { code: status; details: string } | undefined;
}

function events(requestId: string, after: number, withStarted: boolean): GenerateEvent[] {
  const out: GenerateEvent[] = [];
  if (withStarted)
    out.push({
      requestId,
      event: { $case: 'started', value: { model: 'm', promptTokens: 3, promptTokenIds: [] } },
    });
  for (let i = after; i < TOKENS; i++)
    out.push({
      requestId,
      event: { $case: 'delta', value: { text: `t${i} `, index: i, tokenIds: [i], tokenCount: 1 } },
    });
  out.push({
    requestId,
    event: {
      $case: 'finished',
      value: {
        reason: FinishReason.FINISH_REASON_LENGTH,
        stopReason: '',
        usage: { promptTokens: 3, completionTokens: TOKENS, totalTokens: 3 + TOKENS },
        timing: undefined,
      },
    },
  });
  return out;
}

function serve(replica: Replica, call: ServerWritableStream<unknown, GenerateEvent>, list: GenerateEvent[]) {
  let deltas = 0;
  for (const e of list) {
    if (e.event?.$case === 'delta' && replica.breakAfter !== undefined && deltas === replica.breakAfter) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'controller shutting down' });
      return;
    }
    if (e.event?.$case === 'delta') deltas += 1;
    call.write(e);
  }
  call.end();
}

async function startReplica(): Promise<Replica> {
  const server = new Server();
  const replica: Replica = { server, address: '', calls: [], breakAfter: undefined, refuse: undefined };
  server.addService(InferenceService, {
    generate: (call: ServerWritableStream<GenerateRequest, GenerateEvent>) => {
      replica.calls.push(`generate ${call.request.requestId}`);
      if (replica.refuse) call.emit('error', replica.refuse);
      else serve(replica, call, events(call.request.requestId, 0, true));
    },
    resume: (call: ServerWritableStream<ResumeRequest, GenerateEvent>) => {
      const { requestId, afterTokenIndex } = call.request;
      replica.calls.push(`resume ${requestId} after ${afterTokenIndex}`);
      serve(replica, call, events(requestId, afterTokenIndex, afterTokenIndex === 0));
    },
    cancel: (_call: unknown, cb: (e: null, r: { found: boolean }) => void) => cb(null, { found: false }),
    listModels: (_call: unknown, cb: (e: null, r: unknown) => void) => cb(null, { models: [] }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  replica.address = `127.0.0.1:${port}`;
  return replica;
}

let a: Replica;
let b: Replica;
let clients: CorralClient[] = [];

beforeAll(async () => {
  [a, b] = [await startReplica(), await startReplica()];
});

afterAll(() => {
  a?.server.forceShutdown();
  b?.server.forceShutdown();
});

beforeEach(() => {
  for (const r of [a, b]) Object.assign(r, { calls: [], breakAfter: undefined, refuse: undefined });
  for (const c of clients) c.close();
  clients = [];
});

function clientsFor(...addresses: string[]): CorralClient[] {
  clients = addresses.map((address) => new CorralClient({ address, maxAttempts: 1 }));
  return clients;
}

async function collect(stream: AsyncIterable<GenerationEvent>): Promise<string[]> {
  const seen: string[] = [];
  for await (const e of stream) seen.push(e.type === 'delta' ? `${e.index}` : e.type);
  return seen;
}

const params = { model: 'm', prompt: 'hi' };
const whole = ['started', ...Array.from({ length: TOKENS }, (_, i) => `${i}`), 'finished'];

describe('generateDurably', () => {
  it('a stream broken mid-way resumes on the other replica after the tokens received', async () => {
    a.breakAfter = 2;
    const failovers: string[] = [];
    const seen = await collect(
      generateDurably(clientsFor(a.address, b.address), params, {
        requestId: 'r1',
        onFailover: (f) =>
          failovers.push(`${f.how} on ${f.to} after ${f.afterTokenIndex}: ${f.error.codeName}`),
      }),
    );
    expect(seen).toEqual(whole);
    expect(a.calls).toEqual(['generate r1']);
    expect(b.calls).toEqual(['resume r1 after 2']);
    expect(failovers).toEqual(['resume on 1 after 2: UNAVAILABLE']);
  });

  it('a replica that is gone before anything arrived: Generate again elsewhere with the same request id', async () => {
    const gone = await startReplica();
    gone.server.forceShutdown();
    const seen = await collect(
      generateDurably(clientsFor(gone.address, b.address), params, { requestId: 'r2' }),
    );
    expect(seen).toEqual(whole);
    expect(b.calls).toEqual(['generate r2']);
  });

  it('a break after Started but before any token resumes after 0 without a second Started', async () => {
    a.breakAfter = 0;
    const seen = await collect(
      generateDurably(clientsFor(a.address, b.address), params, { requestId: 'r3' }),
    );
    expect(seen).toEqual(whole);
    expect(b.calls).toEqual(['resume r3 after 0']);
  });

  it('an answer about the request (not a replica going away) is the caller’s: no other replica is tried', async () => {
    a.refuse = { code: status.INVALID_ARGUMENT, details: 'max_tokens is too large' };
    const error = (await collect(
      generateDurably(clientsFor(a.address, b.address), params, { requestId: 'r4' }),
    ).catch((e: unknown) => e)) as CorralClientError;
    expect(error.codeName).toBe('INVALID_ARGUMENT');
    expect(error.details).toBe('max_tokens is too large');
    expect(b.calls).toEqual([]);
  });

  it('every replica unavailable: gives up after failoverMs with the last error', async () => {
    a.refuse = { code: status.UNAVAILABLE, details: 'no ready replica' };
    b.refuse = { code: status.UNAVAILABLE, details: 'no ready replica' };
    const error = (await collect(
      generateDurably(clientsFor(a.address, b.address), params, {
        requestId: 'r5',
        failoverMs: 300,
        retryBaseMs: 20,
      }),
    ).catch((e: unknown) => e)) as CorralClientError;
    expect(error.codeName).toBe('UNAVAILABLE');
    expect(error.details).toBe('no ready replica');
    expect(a.calls.length).toBeGreaterThan(1);
    expect(b.calls.length).toBeGreaterThan(1);
    expect(new Set([...a.calls, ...b.calls])).toEqual(new Set(['generate r5']));
  });

  it('a replica that hangs mid-stream (SIGSTOP): its unanswered keepalive pings break the stream, which resumes elsewhere', async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'hung-replica.ts')], {
      cwd: join(here, '..', '..', '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const hung = new CorralClient({
        address: line.toString().trim(),
        maxAttempts: 1,
        keepaliveTimeMs: 500,
        keepaliveTimeoutMs: 500,
      });
      clients = [hung, new CorralClient({ address: b.address, maxAttempts: 1 })];
      const seen: string[] = [];
      for await (const e of generateDurably(clients, params, { requestId: 'r6' })) {
        seen.push(e.type === 'delta' ? `${e.index}` : e.type);
        // hung-replica.ts sends Started and 2 deltas, then nothing: stop it so it answers no ping either
        if (e.type === 'delta' && e.index === 1) child.kill('SIGSTOP');
      }
      expect(seen).toEqual(whole);
      expect(b.calls).toEqual(['resume r6 after 2']);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
  });
});
