/**
 * Multi-node roles (`--nnodes N --node-rank R --master-addr A --master-port P`), imitating what a vLLM TP/PP group
 * looks like from outside: rank 0 listens on the master port and opens its API only when every other rank has
 * joined; the others (headless) connect to it. Once joined, the ranks heartbeat over the link; when any rank dies
 * (socket closed, or silent beyond the heartbeat timeout) the others fail like a collective would, with an
 * NCCL-style error and a non-zero exit. A real group notices a dead peer at the next collective, which decode
 * steps run every few milliseconds, so detection here is meant to be well under 2 s.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export const HEARTBEAT_MS = 250;
export const PEER_TIMEOUT_MS = 1500;

/** What a torch.distributed/NCCL group prints when a peer vanishes mid-collective. */
export function ncclError(detail: string): string {
  return (
    'torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, ' +
    `remote process exited or there was a network error, NCCL version 2.21.5 (${detail})`
  );
}

export interface GroupConfig {
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** How long a non-zero rank keeps trying to reach rank 0 (torch's TCPStore connect timeout is minutes). */
  joinTimeoutMs: number;
}

export interface GroupEvents {
  /** Every rank joined (rank 0: all peers connected; others: connected to rank 0). */
  joined(): void;
  /** The group broke: the caller prints the error and exits non-zero. */
  broken(message: string): void;
  info(message: string): void;
}

export interface GroupLink {
  close(): void;
}

/** Watches one peer socket: line-framed `HELLO <rank>` / `PING`; calls lost() once when it closes or goes silent. */
function watch(sock: Socket, onLine: (line: string) => void, lost: (why: string) => void): () => void {
  let last = Date.now();
  let done = false;
  let buf = '';
  const fail = (why: string) => {
    if (done) return;
    done = true;
    stop();
    lost(why);
  };
  const ping = setInterval(() => {
    if (Date.now() - last > PEER_TIMEOUT_MS) fail(`no heartbeat for ${PEER_TIMEOUT_MS} ms`);
    else sock.write('PING\n');
  }, HEARTBEAT_MS);
  const stop = () => {
    done = true;
    clearInterval(ping);
  };
  sock.setNoDelay(true);
  sock.on('data', (d: Buffer) => {
    last = Date.now();
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  sock.on('close', () => fail('connection closed'));
  sock.on('error', (e) => fail(String(e)));
  return () => {
    stop();
    sock.destroy();
  };
}

export function startGroupLink(cfg: GroupConfig, ev: GroupEvents): GroupLink {
  return cfg.nodeRank === 0 ? leader(cfg, ev) : follower(cfg, ev);
}

function leader(cfg: GroupConfig, ev: GroupEvents): GroupLink {
  const peers = new Map<number, () => void>();
  let broken = false;
  const closeAll = () => {
    for (const stop of peers.values()) stop();
    server.close();
  };
  const server: Server = createServer((sock) => {
    let rank = -1;
    const stop = watch(
      sock,
      (line) => {
        const m = /^HELLO (\d+)$/.exec(line);
        if (!m || rank >= 0) return;
        rank = Number(m[1]);
        if (rank <= 0 || rank >= cfg.nnodes || peers.has(rank)) {
          ev.info(`rejecting a peer that says it is rank ${rank}`);
          sock.destroy();
          return;
        }
        peers.set(rank, stop);
        ev.info(`rank ${rank} joined (${peers.size + 1}/${cfg.nnodes})`);
        if (peers.size === cfg.nnodes - 1) ev.joined();
      },
      (why) => {
        if (rank < 0 || broken) return;
        broken = true;
        closeAll();
        ev.broken(ncclError(`rank ${rank}: ${why}`));
      },
    );
  });
  server.on('error', (e) => {
    broken = true;
    ev.broken(
      `RuntimeError: cannot listen on the master port ${cfg.masterAddr}:${cfg.masterPort}: ${String(e)}`,
    );
  });
  server.listen(cfg.masterPort, cfg.masterAddr, () =>
    ev.info(`waiting for ${cfg.nnodes - 1} rank(s) on ${cfg.masterAddr}:${cfg.masterPort}`),
  );
  return { close: closeAll };
}

function follower(cfg: GroupConfig, ev: GroupEvents): GroupLink {
  const deadline = Date.now() + cfg.joinTimeoutMs;
  let stop: (() => void) | undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const attempt = () => {
    const sock = createConnection({ host: cfg.masterAddr, port: cfg.masterPort });
    let connected = false;
    sock.once('connect', () => {
      connected = true;
      sock.write(`HELLO ${cfg.nodeRank}\n`);
      ev.info(`rank ${cfg.nodeRank} joined rank 0 at ${cfg.masterAddr}:${cfg.masterPort}`);
      stop = watch(
        sock,
        () => {},
        (why) => {
          if (!closed) ev.broken(ncclError(`rank 0: ${why}`));
        },
      );
      ev.joined();
    });
    sock.once('error', () => {
      if (connected || closed) return;
      sock.destroy();
      if (Date.now() > deadline)
        ev.broken(
          `torch.distributed.DistStoreError: Timed out after ${Math.round(cfg.joinTimeoutMs / 1000)} seconds waiting for clients at ${cfg.masterAddr}:${cfg.masterPort}`,
        );
      else retry = setTimeout(attempt, 200);
    });
  };
  attempt();
  return {
    close() {
      closed = true;
      if (retry) clearTimeout(retry);
      stop?.();
    },
  };
}
