import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { exitQuietlyWhenOutputCloses } from '../../../cli/closed-output.ts';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`write ${code}`), { code });
}

describe('exitQuietlyWhenOutputCloses', () => {
  it('exits 0 when the reader of the output went away (EPIPE)', () => {
    const output = new EventEmitter();
    const exits: number[] = [];
    exitQuietlyWhenOutputCloses(output, (code) => exits.push(code));
    output.emit('error', errno('EPIPE'));
    expect(exits).toEqual([0]);
  });

  it('lets any other output error through', () => {
    const output = new EventEmitter();
    const exits: number[] = [];
    exitQuietlyWhenOutputCloses(output, (code) => exits.push(code));
    expect(() => output.emit('error', errno('ENOSPC'))).toThrow('write ENOSPC');
    expect(exits).toEqual([]);
  });
});
