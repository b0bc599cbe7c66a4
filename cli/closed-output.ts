/**
 * A reader that goes away (`corral generate ... | head`) ends the command quietly, as it does any Unix tool:
 * without this, the next write's EPIPE is an unhandled 'error' event and Node prints a stack trace. Exiting
 * also drops the command's gRPC stream, which the controller takes as the client leaving.
 */
import type { EventEmitter } from 'node:events';

export function exitQuietlyWhenOutputCloses(output: EventEmitter, exit: (code: number) => void): void {
  output.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    exit(0);
  });
}
