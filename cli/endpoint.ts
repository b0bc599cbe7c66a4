/**
 * Where the CLI finds the controller: --addr, else $CORRAL_ADDR, else the endpoints file `corral up` wrote,
 * else the local cluster's default port. And its API key: --api-key, else $CORRAL_API_KEY, else the key file
 * `corral up` keeps (not $OPENAI_API_KEY: that may hold a key for api.openai.com, not to be sent elsewhere).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readApiKey } from './local-api-key.ts';
import { REPO_ROOT } from './local-cluster.ts';

export const LOCAL_STATE_DIR = join(REPO_ROOT, '.corral', 'local');
export const ENDPOINTS_FILE = join(LOCAL_STATE_DIR, 'endpoints.json');
/** The local cluster's API key, mode 0600 (local-api-key.ts). */
export const LOCAL_API_KEY_FILE = join(LOCAL_STATE_DIR, 'api-key');
export const DEFAULT_GRPC_ADDRESS = '127.0.0.1:7070';
export const DEFAULT_HTTP_ADDRESS = '127.0.0.1:8000';

export interface LocalEndpoints {
  grpc: string;
  http?: string;
  pid: number;
  /** Every controller replica's gRPC address (grpc is the first). */
  controllers?: string[];
}

export function resolveControllerAddress(flag: string | undefined): string {
  if (flag) return flag;
  if (process.env.CORRAL_ADDR) return process.env.CORRAL_ADDR;
  if (existsSync(ENDPOINTS_FILE)) {
    try {
      const parsed = JSON.parse(readFileSync(ENDPOINTS_FILE, 'utf8')) as LocalEndpoints;
      if (parsed.grpc && isAlive(parsed.pid)) return replicasTarget(parsed.controllers) ?? parsed.grpc;
    } catch {
      // a damaged file is ignored like a missing one
    }
  }
  return DEFAULT_GRPC_ADDRESS;
}

/** The controller's OpenAI-compatible HTTP API (host:port): --http, else $CORRAL_HTTP, else `corral up`'s. */
export function resolveHttpAddress(flag: string | undefined): string {
  if (flag) return flag;
  if (process.env.CORRAL_HTTP) return process.env.CORRAL_HTTP;
  if (existsSync(ENDPOINTS_FILE)) {
    try {
      const parsed = JSON.parse(readFileSync(ENDPOINTS_FILE, 'utf8')) as LocalEndpoints;
      if (parsed.http && isAlive(parsed.pid)) return parsed.http;
    } catch {
      // a damaged file is ignored like a missing one
    }
  }
  return DEFAULT_HTTP_ADDRESS;
}

export function resolveApiKey(flag: string | undefined, keyFile = LOCAL_API_KEY_FILE): string | undefined {
  return flag || process.env.CORRAL_API_KEY || readApiKey(keyFile);
}

/** Several loopback replicas as one gRPC target: pick_first moves on to the next one if a replica is down. */
export function replicasTarget(addresses: readonly string[] | undefined): string | undefined {
  if (!addresses || addresses.length < 2) return undefined;
  if (!addresses.every((a) => /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(a))) return undefined;
  return `ipv4:${addresses.join(',')}`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
