/**
 * What a test left running: descendant processes of this test process, and TCP ports it still listens on.
 * Read from /proc, so it sees what the code under test started, not only what the test tracked.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface Leaks {
  processes: string[]; // "pid command"
  listeningPorts: number[];
}

export function descendantProcesses(root = process.pid): string[] {
  const children = new Map<number, number[]>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may contain spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      if (fields[0] === 'Z') continue; // a zombie holds nothing; its parent just has not reaped it yet
      const ppid = Number(fields[1]);
      const pid = Number(entry);
      names.set(pid, stat.slice(stat.indexOf('(') + 1, close));
      const list = children.get(ppid) ?? [];
      list.push(pid);
      children.set(ppid, list);
    } catch {
      // the process exited while we were reading /proc
    }
  }
  const out: string[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(`${pid} ${names.get(pid) ?? '?'}`);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

function socketInodes(pid: number | 'self'): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // fd closed meanwhile
    }
  }
  return inodes;
}

export function listeningPorts(pid: number | 'self' = 'self'): number[] {
  const mine = socketInodes(pid);
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl local_address rem_address st ... inode(9)
      if (cols[3] !== '0A' || !cols[9] || !mine.has(cols[9])) continue;
      ports.push(Number.parseInt(cols[1]?.split(':')[1] ?? '0', 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

export function currentLeaks(baselinePorts: readonly number[]): Leaks {
  return {
    processes: descendantProcesses(),
    listeningPorts: listeningPorts().filter((p) => !baselinePorts.includes(p)),
  };
}

/** Processes take a moment to die after SIGKILL and servers to close; wait that long before calling it a leak. */
export async function waitForNoLeaks(baselinePorts: readonly number[], timeoutMs = 5000): Promise<Leaks> {
  const deadline = Date.now() + timeoutMs;
  let leaks = currentLeaks(baselinePorts);
  while ((leaks.processes.length > 0 || leaks.listeningPorts.length > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    leaks = currentLeaks(baselinePorts);
  }
  return leaks;
}
