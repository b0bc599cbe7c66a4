/**
 * A free TCP port on the engine host, chosen by the kernel (listen on 0, read the port, close). Another
 * process could take it before the engine binds; then the engine exits on EADDRINUSE and the supervisor's
 * restart picks a new port, so the race costs one backoff, not a wrong answer.
 */
import { createServer } from 'node:net';

export function pickFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error(`no free port on ${host}`))));
    });
  });
}
