import { describe, expect, it } from 'vitest';
import { endpointOf, fillModel, formatBatch } from '../../../cli/batch-command.ts';

describe('corral batch', () => {
  it('--model fills in the model of lines that name none, and leaves every other line as it was', () => {
    const text = [
      '{"custom_id":"a","body":{"messages":[]}}',
      '{"custom_id":"b","body":{"model":"other"}}',
      'not json',
      '',
    ].join('\n');
    expect(fillModel(text, 'm').split('\n')).toEqual([
      '{"custom_id":"a","body":{"messages":[],"model":"m"}}',
      '{"custom_id":"b","body":{"model":"other"}}',
      'not json',
      '',
    ]);
  });

  it("takes the batch's endpoint from the first line that names a url", () => {
    expect(endpointOf('oops\n{"url":"/v1/completions"}\n')).toBe('/v1/completions');
    expect(endpointOf('oops')).toBe('/v1/chat/completions');
  });

  it('prints the progress on one line, and why a failed batch failed', () => {
    expect(
      formatBatch({
        id: 'batch_1',
        status: 'failed',
        output_file_id: null,
        error_file_id: null,
        request_counts: { total: 10, completed: 3, failed: 2 },
        progress: { in_progress: 4, pending: 1 },
        errors: { data: [{ message: 'input file file-1 is gone' }] },
      }),
    ).toBe(
      'batch_1  failed  total 10  completed 3  failed 2  in the queue 4  not sent 1\n  error: input file file-1 is gone\n',
    );
  });
});
