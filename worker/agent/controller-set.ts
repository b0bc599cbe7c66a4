/**
 * The controller replicas this worker registers with, one Registry connection each. A target is either one
 * replica (`HOST:PORT`) or `dns:///NAME:PORT`: every address NAME resolves to, re-resolved every refreshMs, as a
 * Kubernetes headless Service lists the ready controller pods. A replica that appears gets a connection; one
 * that disappears from the answer has its connection stopped. A failed lookup keeps the current set (a DNS blip
 * must not disconnect the worker from its controllers).
 */
import type { Logger } from '../../common/log.ts';

export type ControllerTarget = { t: 'address'; address: string } | { t: 'dns'; host: string; port: number };

export interface ControllerLink {
  heartbeatNow(): void;
  stop(): Promise<void>;
}

export interface ControllerSetDeps {
  targets: readonly ControllerTarget[];
  /** The IP addresses a name resolves to now. */
  resolve(host: string): Promise<string[]>;
  connect(address: string): ControllerLink;
  refreshMs: number;
  log: Logger;
}

const DNS_PREFIX = 'dns:///';

/** `HOST:PORT` or `dns:///NAME:PORT`; undefined when it is neither. */
export function parseControllerTarget(
  raw: string,
  parseHostPort: (s: string) => { host: string; port: number } | undefined,
): ControllerTarget | undefined {
  if (!raw.startsWith(DNS_PREFIX)) return parseHostPort(raw) ? { t: 'address', address: raw } : undefined;
  const hp = parseHostPort(raw.slice(DNS_PREFIX.length));
  return hp ? { t: 'dns', host: hp.host, port: hp.port } : undefined;
}

export class ControllerSet {
  private readonly links = new Map<string, ControllerLink>();
  /** Each DNS target's last answer (`NAME:PORT` -> addresses), kept through a failed lookup. */
  private readonly resolved = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly deps: ControllerSetDeps) {}

  get addresses(): string[] {
    return [...this.links.keys()];
  }

  async start(): Promise<void> {
    await this.refresh();
    if (this.deps.targets.some((t) => t.t === 'dns'))
      this.timer = setInterval(() => void this.refresh(), this.deps.refreshMs);
  }

  /** Resolves every target and connects to new addresses, disconnects from vanished ones. */
  refresh(): Promise<void> {
    this.refreshing ??= this.resolveAll().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  heartbeatNow(): void {
    for (const l of this.links.values()) l.heartbeatNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.refreshing;
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.all(links.map((l) => l.stop()));
  }

  private async resolveAll(): Promise<void> {
    const wanted = new Set<string>();
    for (const t of this.deps.targets) {
      if (t.t === 'address') {
        wanted.add(t.address);
        continue;
      }
      const name = `${t.host}:${t.port}`;
      try {
        const ips = await this.deps.resolve(t.host);
        this.resolved.set(
          name,
          [...new Set(ips)].map((ip) => hostPort(ip, t.port)),
        );
      } catch (e) {
        this.deps.log.warn('controller name did not resolve; keeping its current replicas', {
          name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
      for (const a of this.resolved.get(name) ?? []) wanted.add(a);
    }
    if (this.stopped) return;
    for (const address of wanted) {
      if (this.links.has(address)) continue;
      this.deps.log.info('registering with controller replica', { controller: address });
      this.links.set(address, this.deps.connect(address));
    }
    for (const [address, link] of this.links) {
      if (wanted.has(address)) continue;
      this.deps.log.info('controller replica gone from DNS; disconnecting', { controller: address });
      this.links.delete(address);
      void link.stop();
    }
  }
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
