/**
 * Redis key layout of one deployment's queue. Every key of a deployment shares the hash tag `{deployment}`, so
 * the whole queue lives in one slot and the Lua scripts may touch any of its keys (Redis Cluster ready).
 *
 *   B = <prefix>:{<deployment>}
 *   B:r:<id>          hash    one request: body, body hash, tenant, class, tag, deadline, state, owner, lease...
 *   B:ready:<class>   zset    queued requests of a class, scored by finish tag (fair-policy.ts)
 *   B:deadlines       zset    queued requests with a deadline, scored by deadline (ms)
 *   B:leases          zset    dispatched requests, scored by lease expiry (ms)
 *   B:sched           hash    v:<class> (virtual time), credit:<class> (reserved-share credit)
 *   B:lastf           hash    <class>:<tenant> -> that tenant's last finish tag in the class
 *   B:disp:<second>   string  requests handed out during that second (dispatch rate, expires after 120 s)
 *   B:drainat         string  when the last take that left requests waiting ran (ms)
 *   B:bdisp:<second>  string  requests taken during that second by takes that followed one that left requests
 *   B:bms:<second>    string  waiting, and the ms since that one (the drain rate: bdisp / bms; 120 s)
 *   B:bms2:<second>   string  the sum of those gaps squared (the drain's round: bms2 / bms; 120 s)
 *   B:drain           string  `<requests>:<ms>:<round ms>` the last drain measured, for after a quiet window (1 h)
 *   B:log:<id>        stream  the request's events (stream-log.ts); ids 0-1 Started, 1-<token index> deltas,
 *                             2-0 the terminal entry (Finished or an error)
 *   B:wake            channel pub/sub: a request became queued (payload: its class)
 *   B:cancel          channel pub/sub: a dispatched request was cancelled (payload: its id)
 */
export function queueBase(prefix: string, deployment: string): string {
  return `${prefix}:{${deployment}}`;
}

export function requestKey(base: string, id: string): string {
  return `${base}:r:${id}`;
}

export function logKey(base: string, id: string): string {
  return `${base}:log:${id}`;
}
