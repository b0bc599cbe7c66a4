/** One grpc-js Worker client per worker address, reused by every request (a channel per call would cost a
 * TCP + HTTP/2 handshake on the time-to-first-token path). With a cluster token, every call carries it. */
import { credentials } from '@grpc/grpc-js';
import { sendClusterToken } from '../../common/cluster-token.ts';
import { KEEPALIVE_OPTIONS, NO_CHANNELZ } from '../../common/grpc-server.ts';
import { WorkerClient } from '../../proto/gen/corral/v1/worker.ts';

export class WorkerClients {
  private readonly clients = new Map<string, WorkerClient>();

  constructor(private readonly clusterToken?: string) {}

  get(address: string): WorkerClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new WorkerClient(address, credentials.createInsecure(), {
        ...KEEPALIVE_OPTIONS,
        ...NO_CHANNELZ,
        'grpc.max_receive_message_length': 16 * 1024 * 1024,
        ...(this.clusterToken ? { interceptors: [sendClusterToken(this.clusterToken)] } : {}),
      });
      this.clients.set(address, c);
    }
    return c;
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
