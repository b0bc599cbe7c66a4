/**
 * useLocalCluster(): the local cluster (cli/local-cluster.ts: Redis, controllers, workers as processes) of one
 * e2e test file, in a temp dir of its own. It registers a beforeAll that starts the cluster and waits until it
 * serves, and an afterAll that stops it and removes the dir. vitest runs after-hooks in stack order, so a file
 * that calls it before its own hooks has the cluster up in all of them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { LocalCluster, type LocalClusterOptions, type WorkerSpec } from '../../cli/local-cluster.ts';
import { startedInHook } from './started-in-hook.ts';

export interface ClusterFixture {
  readonly cluster: LocalCluster;
  /** The cluster's state dir (config, Redis's AOF, logs); the test may put its own files there too. */
  readonly dir: string;
}

/** `name` names the temp dir; `readyMs` bounds the wait for ready replicas (the hook gets a minute more). */
export function useLocalCluster(
  name: string,
  options: Omit<LocalClusterOptions, 'dir'>,
  readyMs = 60_000,
): ClusterFixture {
  let started: ClusterFixture | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `corral-e2e-${name}-`));
    const cluster = await LocalCluster.start({ ...options, dir });
    started = { cluster, dir };
    await cluster.waitReady(readyMs);
  }, readyMs + 60_000);
  afterAll(async () => {
    await started?.cluster.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const get = () => startedInHook(started, "useLocalCluster()'s cluster");
  return {
    get cluster() {
      return get().cluster;
    },
    get dir() {
      return get().dir;
    },
  };
}

/** `count` worker nodes of 8 simulated H100s, node-1 to node-`count`, each with `labels` if given. */
export function h100Nodes(count: number, labels?: Record<string, string>): WorkerSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    nodeName: `node-${i + 1}`,
    gpus: 8,
    gpuType: 'h100-80g',
    ...(labels ? { labels } : {}),
  }));
}
