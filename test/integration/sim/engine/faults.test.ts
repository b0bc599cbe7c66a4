/** Fault injection of the engine simulator: per-request header, admin endpoint, crash, hang, dead, failed start. */
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, SimProcess } from './sim-process.ts';

const started: SimProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

async function sim(extra: string[]): Promise<{ p: SimProcess; base: string }> {
  const port = await freePort();
  const p = new SimProcess([
    'serve',
    'm',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--sim-startup-ms',
    '50',
    ...extra,
  ]);
  started.push(p);
  return { p, base: `http://127.0.0.1:${port}` };
}

const complete = (base: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'm', prompt: 'hello', max_tokens: 3, ...body }),
  });

async function metric(base: string, name: string): Promise<number> {
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(
    await (await fetch(`${base}/metrics`)).text(),
  );
  return Number(m?.[1]);
}

describe('engine simulator faults', () => {
  it('answers a status forced by X-Sim-Fault, and rates set through POST /sim/fault', async () => {
    const { p, base } = await sim([]);
    await p.waitForOutput('Application startup complete.');
    const r503 = await complete(base, {}, { 'x-sim-fault': '503' });
    expect(r503.status).toBe(503);
    expect(((await r503.json()) as { error: { code: number } }).error.code).toBe(503);
    expect((await complete(base, {}, { 'x-sim-fault': '429' })).status).toBe(429);
    expect((await complete(base, {})).status).toBe(200);
    await fetch(`${base}/sim/fault`, { method: 'POST', body: JSON.stringify({ rate_429: 1 }) });
    expect((await complete(base, {})).status).toBe(429);
  });

  it('a hung engine keeps /health at 200 while its running request makes no progress', async () => {
    const { p, base } = await sim(['--sim-hang-after-tokens', '3', '--sim-itl-ms', '5']);
    await p.waitForOutput('Application startup complete.');
    const res = await complete(base, { max_tokens: 50, ignore_eos: true, stream: true }, {});
    const reader = res.body?.getReader();
    await reader?.read();
    let tokens = 0;
    for (let i = 0; i < 100 && tokens < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
      tokens = await metric(base, 'vllm:generation_tokens_total');
    }
    expect(tokens).toBe(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(await metric(base, 'vllm:generation_tokens_total')).toBe(3);
    expect(await metric(base, 'vllm:num_requests_running')).toBe(1);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    await reader?.cancel();
  });

  it('a dead engine answers /health 503 and requests 500', async () => {
    const { p, base } = await sim([]);
    await p.waitForOutput('Application startup complete.');
    expect((await fetch(`${base}/sim/fault`, { method: 'POST', body: '{"fault":"dead"}' })).status).toBe(200);
    expect((await fetch(`${base}/health`)).status).toBe(503);
    const r = await complete(base, {});
    expect(r.status).toBe(500);
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain('EngineCore');
  });

  it('crashes (exit 1) after N generated tokens', async () => {
    const { p, base } = await sim(['--sim-crash-after-tokens', '5']);
    await p.waitForOutput('Application startup complete.');
    await complete(base, { max_tokens: 20, ignore_eos: true }).catch(() => undefined);
    expect(await p.exited).toBe(1);
    expect(p.stderr).toContain('EngineDeadError');
  });

  it('POST /sim/fault arms a crash after N more tokens, and refuses fields it does not know', async () => {
    const { p, base } = await sim(['--sim-itl-ms', '5']);
    await p.waitForOutput('Application startup complete.');
    expect((await complete(base, { max_tokens: 4, ignore_eos: true })).status).toBe(200);
    const bad = await fetch(`${base}/sim/fault`, { method: 'POST', body: '{"crash_after":3}' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain(
      'unknown fields crash_after',
    );
    const armed = await fetch(`${base}/sim/fault`, { method: 'POST', body: '{"crash_after_tokens":3}' });
    expect(armed.status).toBe(200);
    await complete(base, { max_tokens: 20, ignore_eos: true }).catch(() => undefined);
    expect(await p.exited).toBe(1);
    expect(p.stderr).toContain('crash after 7 generated tokens');
  });

  it('crashes at simulated time T after the API opened (--sim-crash-at-ms, scaled by --sim-time-scale)', async () => {
    // 4 simulated seconds at time scale 8: half a second of wall time.
    const { p } = await sim(['--sim-crash-at-ms', '4000', '--sim-time-scale', '8']);
    await p.waitForOutput('Application startup complete.');
    expect(await p.exited).toBe(1);
    expect(p.stderr).toContain('--sim-crash-at-ms 4000');
    // Log lines carry simulated time: the crash is stamped 4 s (to the second) after the KV cache line, just
    // before the API opened.
    const stamp = (text: string, marker: string) => {
      const line = text.split('\n').find((l) => l.includes(marker)) ?? '';
      const [h, m, sec] = (/ (\d\d):(\d\d):(\d\d) /.exec(line)?.slice(1) ?? []).map(Number);
      return (h ?? 0) * 3600 + (m ?? 0) * 60 + (sec ?? 0);
    };
    const gap = stamp(p.stderr, 'EngineCore encountered') - stamp(p.stdout, 'Maximum concurrency');
    expect([4, 5]).toContain(gap);
  });

  it('a failed start exits 1 with vLLM text and never opens the port', async () => {
    const { p, base } = await sim(['--sim-fail-start']);
    expect(await p.exited).toBe(1);
    expect(p.stderr).toContain('RuntimeError: Engine core initialization failed');
    expect(
      await fetch(`${base}/health`).then(
        () => 'open',
        () => 'closed',
      ),
    ).toBe('closed');
  });
});
