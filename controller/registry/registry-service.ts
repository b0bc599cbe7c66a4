/**
 * Registry.Register, the gRPC side of the worker registry: the first message must be Hello with a valid
 * inventory (else INVALID_ARGUMENT and the stream ends), answered by Welcome{heartbeat_interval_ms}; then every
 * Heartbeat updates the record. The stream ending or breaking marks the worker lost at once.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { CorralError, InvalidArgumentError, ValidationError } from '../../common/errors.ts';
import { toServiceError } from '../../common/grpc-status.ts';
import type { Logger } from '../../common/log.ts';
import type { ControllerMessage, RegistryServer, WorkerMessage } from '../../proto/gen/corral/v1/registry.ts';
import { inventoryErrors } from './inventory-validation.ts';
import type { Session, WorkerRegistry } from './worker-registry.ts';

type RegisterCall = ServerDuplexStream<WorkerMessage, ControllerMessage>;

export function registryService(deps: {
  registry: WorkerRegistry;
  heartbeatIntervalMs: number;
  log: Logger;
}): RegistryServer {
  return { register: (call: RegisterCall) => handleRegister(call, deps) };
}

function handleRegister(
  call: RegisterCall,
  deps: { registry: WorkerRegistry; heartbeatIntervalMs: number; log: Logger },
): void {
  const peer = call.getPeer();
  let attached: { workerId: string; sessionId: number } | undefined;
  let ended = false;
  let beforeWelcome: ControllerMessage[] | undefined = [];
  const fail = (e: unknown) => {
    if (ended) return;
    ended = true;
    if (attached) deps.registry.detach(attached.workerId, attached.sessionId, 'stream failed');
    const level = e instanceof CorralError ? 'warn' : 'error';
    deps.log[level]('registration refused', { peer, error: e instanceof Error ? e : String(e) });
    call.emit('error', toServiceError(e));
  };
  const session: Session = {
    // Directives decided while the worker is being attached (the launcher reacts to the attach at once) wait
    // until Welcome is out: the worker expects Welcome first.
    send: (m) => {
      if (ended) return;
      if (beforeWelcome) beforeWelcome.push(m);
      else call.write(m);
    },
    close: (reason) => {
      if (ended) return;
      ended = true;
      call.emit('error', toServiceError(new CorralError('unavailable', reason)));
    },
  };

  call.on('data', (m: WorkerMessage) => {
    if (ended) return;
    try {
      const msg = m.msg;
      if (!attached) {
        if (msg?.$case !== 'hello')
          throw new InvalidArgumentError(
            `the first message on Registry.Register must be hello, got ${msg?.$case ?? 'an empty message'}`,
          );
        const errors = inventoryErrors(msg.value.inventory);
        const inventory = msg.value.inventory;
        if (errors.length > 0 || !inventory) throw new ValidationError('worker inventory', errors);
        const sessionId = deps.registry.attach(inventory, peer, session);
        attached = { workerId: inventory.workerId, sessionId };
        call.write({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: deps.heartbeatIntervalMs } } });
        const queued = beforeWelcome ?? [];
        beforeWelcome = undefined;
        for (const q of queued) call.write(q);
        return;
      }
      if (msg?.$case === 'heartbeat')
        deps.registry.heartbeat(attached.workerId, attached.sessionId, msg.value);
      else if (msg?.$case === 'hello')
        throw new InvalidArgumentError(`worker ${attached.workerId} sent hello twice on one stream`);
    } catch (e) {
      fail(e);
    }
  });
  const gone = (why: string) => {
    if (attached) deps.registry.detach(attached.workerId, attached.sessionId, why);
    ended = true;
  };
  call.on('end', () => {
    gone('worker ended the Register stream');
    call.end();
  });
  call.on('cancelled', () => gone('Register stream cancelled (worker gone or connection lost)'));
  call.on('error', () => gone('Register stream broke'));
}
