import { describe, expect, it } from 'vitest';
import { promptBlockHashes } from '../../../../common/block-hash.ts';
import { silentLogger } from '../../../../common/log.ts';
import { encodeChat, encodePrompt, encodeText } from '../../../../common/tokenizer.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import type { DeploymentView, ReplicaView } from '../../../../controller/deployments/replica-view.ts';
import { DispatchRouting } from '../../../../controller/dispatch/dispatch-routing.ts';
import { DEFAULT_KV_BLOCKS, kvCapacityBlocks } from '../../../../controller/dispatch/kv-capacity.ts';
import { promptBlocks } from '../../../../controller/dispatch/prompt-blocks.ts';
import { decodeDecision, encodeDecision } from '../../../../controller/dispatch/route-feed.ts';
import type { TakenRequest } from '../../../../controller/queue/request-queue.ts';
import type { GroupView } from '../../../../controller/scheduler/pick.ts';
import type { RouteDecision } from '../../../../controller/scheduler/prefix-router.ts';
import { GenerateRequest, PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import { EngineState, type EngineStatus } from '../../../../proto/gen/corral/v1/worker.ts';

const encode = async (text: string) => encodeText(text);
const base: GenerateRequest = {
  model: 'm',
  requestId: 'r',
  input: undefined,
  maxTokens: 8,
  sampling: undefined,
  priority: 0,
  returnTokenIds: false,
  priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
};
const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (salt * 131 + i * 7) % 100_000);

describe('promptBlocks', () => {
  it('hashes the token ids the engine will see: ids as given, text with BOS, chat through the template', async () => {
    const given = ids(100, 1);
    expect(
      await promptBlocks({ ...base, input: { $case: 'promptTokenIds', value: { ids: given } } }, encode),
    ).toEqual({ blocks: promptBlockHashes(given), promptTokens: 100 });
    const text = 'The Rocky Mountains stretch from British Columbia to New Mexico. '.repeat(8);
    const t = await promptBlocks({ ...base, input: { $case: 'prompt', value: text } }, encode);
    expect(t?.blocks).toEqual(promptBlockHashes(encodePrompt(text)));
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: text },
    ];
    const c = await promptBlocks({ ...base, input: { $case: 'chat', value: { messages } } }, encode);
    expect(c?.blocks).toEqual(promptBlockHashes(encodeChat(messages)));
  });

  it('has no blocks for text when no encoder is given (routed by load)', async () => {
    expect(
      await promptBlocks({ ...base, input: { $case: 'prompt', value: 'hi' } }, undefined),
    ).toBeUndefined();
  });
});

describe('route decisions on the shared stream', () => {
  it('round-trip, and a malformed entry is ignored rather than misread', () => {
    const d: RouteDecision = { group: 'g-1', kept: [0, 2 ** 53 - 1, 12345], blockCount: 13, hitBlocks: 4 };
    expect(decodeDecision(encodeDecision(d))).toEqual(d);
    expect(decodeDecision(encodeDecision({ ...d, kept: [] }))).toEqual({ ...d, kept: [] });
    expect(encodeDecision(d, 2)).toBe(encodeDecision({ ...d, kept: d.kept.slice(0, 2) }));
    expect(decodeDecision('g 1')).toBeUndefined();
    expect(decodeDecision('g x 0 1')).toBeUndefined();
    expect(decodeDecision('g 1 0 1 extra')).toBeUndefined();
  });
});

const deployment = compileControllerConfig({
  listen: '127.0.0.1:0',
  deployments: [
    { name: 'd', model: 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8', replicas: 2, tensorParallel: 8 },
  ],
}).deployments[0] as NonNullable<ReturnType<typeof compileControllerConfig>['deployments'][0]>;

function replica(id: string, status: Partial<EngineStatus>, routable = true): ReplicaView {
  return {
    engineId: id,
    workerId: id,
    workerAddress: '127.0.0.1:1',
    routable,
    why: routable ? '' : 'gone',
    placed: routable,
    status: {
      engineId: id,
      state: EngineState.ENGINE_STATE_READY,
      model: 'm',
      running: 0,
      waiting: 0,
      kvCacheUsage: 0,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      restarts: 0,
      lastExit: undefined,
      httpAddress: '',
      detail: '',
      stateSinceMs: 0,
      maxModelLen: 0,
      ...status,
    },
  };
}
const view = (replicas: ReplicaView[]): DeploymentView => ({ deployment, replicas, ready: 2, desired: 2 });
const groups: GroupView[] = ['a', 'b'].map((id) => ({ id, deployment: 'd', state: 'ready', outstanding: 0 }));
const taken = (id: string, tokenIds: number[]): TakenRequest => ({
  id,
  body: JSON.stringify(
    GenerateRequest.toJSON({ ...base, input: { $case: 'promptTokenIds', value: { ids: tokenIds } } }),
  ),
  tenant: 't',
  cls: 'standard',
  attempt: 1,
  deadline: undefined,
  submittedAt: 0,
  cost: 1,
  trace: '',
});

describe('DispatchRouting', () => {
  const make = (shared: RouteDecision[] = []) =>
    new DispatchRouting({
      deployment: 'd',
      capacityBlocks: () => 10_000,
      random: () => 0,
      logger: silentLogger,
      share: (d) => shared.push(d),
    });

  it('keeps a prefix on the group it went to, counts why, and shares the decision', async () => {
    const shared: RouteDecision[] = [];
    const r = make(shared);
    const prefix = ids(1024, 5);
    const first = r.pick(groups, await r.routeOf(taken('1', [...prefix, 1])), '1');
    const second = r.pick(groups, await r.routeOf(taken('2', [...prefix, 2])), '2');
    expect(second.type === 'group' && first.type === 'group' && second.id === first.id).toBe(true);
    expect(Object.fromEntries(r.pickReasons)).toEqual({ 'least outstanding': 1, 'prefix hit': 1 });
    expect(shared.map((d) => [d.group, d.blockCount, d.kept.length])).toEqual([
      [first.type === 'group' ? first.id : '', 64, 16],
      [first.type === 'group' ? first.id : '', 64, 16],
    ]);
  });

  it("learns another replica's decision, and forgets a group that restarted or left", async () => {
    const r = make();
    const prefix = ids(1024, 6);
    const decisions: RouteDecision[] = [];
    const sharing = new DispatchRouting({
      deployment: 'd',
      capacityBlocks: () => 10_000,
      random: () => 0.99,
      logger: silentLogger,
      share: (d) => decisions.push(d),
    });
    const placed = sharing.pick(groups, await sharing.routeOf(taken('x', [...prefix, 9])), 'x');
    for (const d of decisions) r.observe(d);
    const route = await r.routeOf(taken('y', [...prefix, 8]));
    const same = r.pick(groups, route, 'y');
    expect(same.type === 'group' && placed.type === 'group' && same.id === placed.id).toBe(true);
    expect(r.pickReasons.get('prefix hit')).toBe(1);

    const held = placed.type === 'group' ? placed.id : '';
    // Before any heartbeat (a replica that just started and replayed the stream): nothing is forgotten.
    r.observeGroups(view([]));
    const early = r.pick(groups, await r.routeOf(taken('w', [...prefix, 6])), 'w');
    expect(early.type === 'group' && early.reason.startsWith('prefix hit')).toBe(true);
    r.observeGroups(view([replica('a', {}), replica('b', {})]));
    r.observeGroups(
      view([
        replica('a', { restarts: held === 'a' ? 1 : 0 }),
        replica('b', { restarts: held === 'b' ? 1 : 0 }),
      ]),
    );
    const after = r.pick(groups, await r.routeOf(taken('z', [...prefix, 7])), 'z');
    expect(after.type === 'group' && after.reason.startsWith('prefix hit')).toBe(false);
  });
});

describe('kvCapacityBlocks', () => {
  it("sizes a group's KV cache from the deployment's shape, and falls back for what the catalog lacks", () => {
    const blocks = kvCapacityBlocks(deployment, 'h100-80g');
    expect(blocks).toBeGreaterThan(5_000);
    expect(blocks).toBeLessThan(DEFAULT_KV_BLOCKS);
    expect(kvCapacityBlocks(deployment, 'no-such-gpu')).toBe(DEFAULT_KV_BLOCKS);
  });
});
