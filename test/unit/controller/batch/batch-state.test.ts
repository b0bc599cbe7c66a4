import { describe, expect, it } from 'vitest';
import { CorralError } from '../../../../common/errors.ts';
import { BATCH_DEFAULTS, compileBatchConfig } from '../../../../controller/batch/batch-config.ts';
import { completionOutput, failedOutput, succeeded } from '../../../../controller/batch/batch-output.ts';
import {
  allDone,
  BATCH_STATUSES,
  canMove,
  isTerminal,
  MAX_REFUSAL_WAIT_MS,
  onRefusal,
  progressOf,
} from '../../../../controller/batch/batch-state.ts';
import { QueueFullError } from '../../../../controller/queue/errors.ts';
import { OverBudgetError } from '../../../../controller/tenancy/errors.ts';
import { FinishReason } from '../../../../proto/gen/corral/v1/inference.ts';

describe('batch lifecycle', () => {
  it('moves forward only: validating -> in_progress -> completed | expired | cancelling -> cancelled', () => {
    expect(canMove('validating', 'in_progress')).toBe(true);
    expect(canMove('in_progress', 'cancelling')).toBe(true);
    expect(canMove('cancelling', 'cancelled')).toBe(true);
    expect(canMove('in_progress', 'validating')).toBe(false);
    expect(canMove('completed', 'cancelling')).toBe(false);
    expect(canMove('cancelling', 'completed')).toBe(false);
    expect(BATCH_STATUSES.filter(isTerminal)).toEqual(['completed', 'expired', 'cancelled', 'failed']);
  });
});

describe('progressOf', () => {
  it('splits the lines into completed, failed, in the queue and not fed yet', () => {
    expect(progressOf('in_progress', { total: 10, completed: 3, failed: 2, outstanding: 4 })).toEqual({
      status: 'in_progress',
      total: 10,
      completed: 3,
      failed: 2,
      in_progress: 4,
      pending: 1,
    });
  });

  it('is done when every line has a result', () => {
    expect(allDone({ total: 5, completed: 3, failed: 2, outstanding: 0 })).toBe(true);
    expect(allDone({ total: 5, completed: 3, failed: 1, outstanding: 1 })).toBe(false);
  });
});

describe('onRefusal', () => {
  it('waits out a spent budget or a shedding queue for their retry-after, and a deployment with no group', () => {
    expect(onRefusal(new OverBudgetError('t', 'tokens', 1500), 250)).toEqual({ t: 'wait', ms: 1500 });
    expect(onRefusal(new QueueFullError('m', 800, 70_000, 'wait'), 250)).toEqual({ t: 'wait', ms: 800 });
    expect(onRefusal(new QueueFullError('m', 3_600_000, undefined, 'depth'), 250)).toEqual({
      t: 'wait',
      ms: MAX_REFUSAL_WAIT_MS,
    });
    expect(onRefusal(new CorralError('unavailable', 'no ready replica'), 250)).toEqual({
      t: 'wait',
      ms: 1000,
    });
  });

  it('fails the line for what waiting cannot fix', () => {
    expect(onRefusal(new CorralError('invalid_argument', 'context too long'), 250)).toEqual({ t: 'fail' });
    expect(onRefusal(new CorralError('resource_exhausted', 'prompt over maxPromptBytes'), 250)).toEqual({
      t: 'fail',
    });
    expect(onRefusal(new CorralError('unauthenticated', 'tenant disabled'), 250)).toEqual({ t: 'fail' });
  });
});

describe('batch output lines', () => {
  const ran = {
    batchId: 'batch_1',
    line: 2,
    customId: 'q',
    requestId: 'batch_1:q',
    endpoint: 'chat' as const,
    model: 'm',
    created: 1,
  };

  it('a finished request: status 200 and the chat.completion body', () => {
    const o = completionOutput(ran, [
      {
        requestId: '',
        event: { $case: 'started', value: { model: 'm', promptTokens: 3, promptTokenIds: [] } },
      },
      {
        requestId: '',
        event: { $case: 'delta', value: { text: 'Hi', index: 0, tokenCount: 1, tokenIds: [] } },
      },
      {
        requestId: '',
        event: {
          $case: 'finished',
          value: { reason: FinishReason.FINISH_REASON_STOP, stopReason: '', usage: undefined },
        },
      },
    ] as never);
    expect(succeeded(o)).toBe(true);
    expect(o).toMatchObject({
      id: 'batch_req_batch_1_2',
      custom_id: 'q',
      response: {
        status_code: 200,
        request_id: 'batch_1:q',
        body: { choices: [{ message: { content: 'Hi' } }] },
      },
      error: null,
    });
  });

  it('a request that never finished is an internal error, a refused one the status HTTP would answer', () => {
    expect(completionOutput(ran, []).response?.status_code).toBe(500);
    const o = failedOutput(ran, new CorralError('deadline_exceeded', 'too late'));
    expect(succeeded(o)).toBe(false);
    expect(o.response).toMatchObject({ status_code: 504, body: { error: { message: 'too late' } } });
    expect(o.error).toEqual({ code: 'deadline_exceeded', message: 'too late', line: 2 });
  });
});

describe('compileBatchConfig', () => {
  it('fills the defaults, keeps given values and reports every bad field with its path', () => {
    expect(compileBatchConfig(undefined, [])).toEqual(BATCH_DEFAULTS);
    expect(compileBatchConfig({ maxOutstanding: 8 }, []).maxOutstanding).toBe(8);
    const errors: { path: string; message: string }[] = [];
    compileBatchConfig({ maxLines: 0, pollMs: 'fast', bogus: 1 }, errors);
    expect(errors).toEqual([
      { path: 'batch.bogus', message: 'unknown field' },
      { path: 'batch.maxLines', message: 'must be a positive integer, got 0' },
      { path: 'batch.pollMs', message: 'must be a positive integer, got "fast"' },
    ]);
  });

  it('keeps the lock renewed well inside its duration and checked for expiry at least as often', () => {
    expect(BATCH_DEFAULTS).toMatchObject({ lockMs: 5000, lockRenewMs: 1000, stalledCheckMs: 1000 });
    const ok: { path: string; message: string }[] = [];
    expect(compileBatchConfig({ lockMs: 2000, lockRenewMs: 500, stalledCheckMs: 2000 }, ok)).toMatchObject({
      lockMs: 2000,
      lockRenewMs: 500,
      stalledCheckMs: 2000,
    });
    expect(ok).toEqual([]);
    const errors: { path: string; message: string }[] = [];
    compileBatchConfig({ lockMs: 1000, stalledCheckMs: 1500 }, errors);
    expect(errors).toEqual([
      { path: 'batch.lockRenewMs', message: 'must be less than batch.lockMs (1000)' },
      { path: 'batch.stalledCheckMs', message: 'must be at most batch.lockMs (1000)' },
    ]);
  });
});
