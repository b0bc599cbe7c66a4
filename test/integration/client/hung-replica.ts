/**
 * A stand-in controller replica in its own process, for durable-generate.test.ts to SIGSTOP: Generate streams
 * Started and HUNG_AFTER one-token deltas, then leaves the stream open. Prints its address on stdout.
 */
import { Server, ServerCredentials, type ServerWritableStream } from '@grpc/grpc-js';
import {
  type GenerateEvent,
  type GenerateRequest,
  InferenceService,
} from '../../../proto/gen/corral/v1/inference.ts';

const HUNG_AFTER = 2;

const server = new Server();
server.addService(InferenceService, {
  generate: (call: ServerWritableStream<GenerateRequest, GenerateEvent>) => {
    const requestId = call.request.requestId;
    call.write({
      requestId,
      event: { $case: 'started', value: { model: 'm', promptTokens: 3, promptTokenIds: [] } },
    });
    for (let i = 0; i < HUNG_AFTER; i++)
      call.write({
        requestId,
        event: { $case: 'delta', value: { text: `t${i} `, index: i, tokenIds: [i], tokenCount: 1 } },
      });
  },
  resume: () => {},
  cancel: () => {},
  listModels: () => {},
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, port) => {
  if (e) throw e;
  process.stdout.write(`127.0.0.1:${port}\n`);
});
