/**
 * The queue's Lua scripts. Each runs atomically in Redis, so two controller replicas submitting, taking,
 * renewing or cancelling at the same moment see one order of events. The hand-out order implements
 * fair-policy.ts (same integer arithmetic); request states:
 *
 *   queued      in B:ready:<class> (and B:deadlines when it has one), waiting for take()
 *   dispatched  handed to an owner (a controller replica) until B:leases says its lease ran out
 *   finished    the owner reported the end of the stream
 *   failed      the owner gave up, or the lease ran out more than maxAttempts times
 *   cancelled   cancel() before dispatch, or a cancel seen when a dispatched request's lease ran out
 *   expired     its deadline passed while queued
 *
 * Ended requests keep their hash (without the body) for retainMs, so a retry with the same id attaches to the
 * outcome instead of running again. Failed, cancelled and expired requests also get the terminal entry of
 * their stream log (id 2-0, `k=error`), so whoever reads the stream learns the outcome.
 * Whenever a request becomes queued (submitted or handed back) the script PUBLISHes its class on B:wake, so
 * idle dispatchers on every replica wake at once instead of polling (arrival-signal.ts), except a submit whose
 * own controller took the request in the same script (SUBMIT with take arguments); a cancel of a
 * dispatched request PUBLISHes its id on B:cancel, so its owner can abort the engine request at once instead
 * of at its next lease renewal.
 */

const PRELUDE = `
local CLASSES = {'interactive', 'standard', 'batch'}
local function fmt(x) return string.format('%.0f', x) end
local function terminate(base, id, state, code, msg, now, retainMs)
  local rk = base .. ':r:' .. id
  redis.call('HSET', rk, 'state', state, 'ended', fmt(now), 'error_code', code, 'error_msg', msg)
  redis.call('HDEL', rk, 'body')
  redis.call('PEXPIRE', rk, retainMs)
  local lk = base .. ':log:' .. id
  -- fails harmlessly when the stream already ended (its top is 2-0): there is only ever one terminal entry
  redis.pcall('XADD', lk, '2-0', 'k', 'error', 'code', code, 'msg', msg)
  redis.call('PEXPIRE', lk, retainMs)
end
local function requeue(base, id, cls, tag, deadline)
  redis.call('HSET', base .. ':r:' .. id, 'state', 'queued', 'owner', '', 'lease', '0')
  redis.call('ZADD', base .. ':ready:' .. cls, tag, id)
  if deadline > 0 then redis.call('ZADD', base .. ':deadlines', fmt(deadline), id) end
  redis.call('PUBLISH', base .. ':wake', cls)
end
-- A dispatched request goes back to its class with its original tag (so ahead of later arrivals), unless it
-- was cancelled meanwhile, used up its attempts or its deadline passed.
local function handBack(base, id, now, maxAttempts, retainMs, why)
  local f = redis.call('HMGET', base .. ':r:' .. id, 'attempts', 'cls', 'tag', 'deadline', 'cancel')
  local deadline = tonumber(f[4]) or 0
  redis.call('ZREM', base .. ':leases', id)
  if f[5] == '1' then
    terminate(base, id, 'cancelled', 'cancelled', 'request cancelled', now, retainMs)
  elseif (tonumber(f[1]) or 0) >= maxAttempts then
    terminate(base, id, 'failed', 'unavailable', 'gave up after ' .. f[1] .. ' attempts (' .. why .. ')', now, retainMs)
  elseif deadline > 0 and deadline <= now then
    terminate(base, id, 'expired', 'deadline_exceeded', 'deadline passed before the request finished', now, retainMs)
  else
    requeue(base, id, f[2], f[3], deadline)
  end
end
local function reclaim(base, now, maxAttempts, retainMs, limit)
  local ids = redis.call('ZRANGEBYSCORE', base .. ':leases', '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    if redis.call('HGET', base .. ':r:' .. id, 'state') == 'dispatched' then
      handBack(base, id, now, maxAttempts, retainMs, 'lease expired')
    else
      redis.call('ZREM', base .. ':leases', id)
    end
  end
  return #ids
end
local function sweepDeadlines(base, now, retainMs, limit)
  local ids = redis.call('ZRANGEBYSCORE', base .. ':deadlines', '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', base .. ':deadlines', id)
    local f = redis.call('HMGET', base .. ':r:' .. id, 'state', 'cls')
    if f[1] == 'queued' then
      redis.call('ZREM', base .. ':ready:' .. f[2], id)
      terminate(base, id, 'expired', 'deadline_exceeded', 'deadline passed before dispatch', now, retainMs)
    end
  end
  return #ids
end
`;

/**
 * The hand-out, as a function of where its arguments start in ARGV (TAKE's own, or after SUBMIT's):
 * ARGV[o..]: base owner n now leaseMs maxAttempts retainMs reserveUnits[3] creditUnit sweepLimit
 * -> list of {id, body, tenant, cls, attempts, deadline, submitted, cost, trace}, and the number of requests
 *    still ready after it (0 whenever fewer than n were handed out)
 */
const TAKE_NEXT = `
local function takeNext(o)
  local base, owner, n, now = ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  local leaseMs, maxAttempts, retainMs = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6])
  local reserves = {tonumber(ARGV[o + 7]), tonumber(ARGV[o + 8]), tonumber(ARGV[o + 9])}
  local unit, limit = tonumber(ARGV[o + 10]), tonumber(ARGV[o + 11])
  reclaim(base, now, maxAttempts, retainMs, limit)
  sweepDeadlines(base, now, retainMs, limit)
  local depth, credits = {}, {}
  local stored = redis.call('HMGET', base .. ':sched', 'credit:interactive', 'credit:standard', 'credit:batch')
  for i = 1, 3 do
    depth[i] = redis.call('ZCARD', base .. ':ready:' .. CLASSES[i])
    credits[i] = tonumber(stored[i]) or 0
  end
  local out = {}
  while #out < n do
    local highest = nil
    for i = 1, 3 do
      if depth[i] > 0 then
        if not highest then highest = i end
        credits[i] = math.min(unit, credits[i] + reserves[i])
      end
    end
    if not highest then break end
    local pick = highest
    for i = 1, 3 do
      if depth[i] > 0 and reserves[i] > 0 and credits[i] >= unit then
        pick = i
        credits[i] = 0
        break
      end
    end
    local cls = CLASSES[pick]
    local popped = redis.call('ZPOPMIN', base .. ':ready:' .. cls)
    depth[pick] = depth[pick] - 1
    local id = popped[1]
    redis.call('HSET', base .. ':sched', 'v:' .. cls, popped[2])
    local rk = base .. ':r:' .. id
    local f = redis.call('HMGET', rk, 'body', 'tenant', 'attempts', 'deadline', 'submitted', 'cost', 'state', 'trace')
    local deadline = tonumber(f[4]) or 0
    local attempted = (tonumber(f[3]) or 0) > 0
    if f[7] ~= 'queued' then
      -- not reachable through these scripts; never hand out what is not queued
    elseif attempted and #redis.call('XRANGE', base .. ':log:' .. id, '2-0', '2-0') > 0 then
      -- an earlier owner wrote the end of the stream but died before finish(): it is done, do not run it again
      if deadline > 0 then redis.call('ZREM', base .. ':deadlines', id) end
      redis.call('HSET', rk, 'state', 'finished', 'ended', fmt(now))
      redis.call('HDEL', rk, 'body')
      redis.call('PEXPIRE', rk, retainMs)
    elseif deadline > 0 and deadline <= now then
      redis.call('ZREM', base .. ':deadlines', id)
      terminate(base, id, 'expired', 'deadline_exceeded', 'deadline passed before dispatch', now, retainMs)
    else
      local attempts = (tonumber(f[3]) or 0) + 1
      redis.call('HSET', rk, 'state', 'dispatched', 'owner', owner, 'lease', fmt(now + leaseMs),
        'attempts', tostring(attempts), 'dispatched', fmt(now))
      redis.call('ZADD', base .. ':leases', fmt(now + leaseMs), id)
      if deadline > 0 then redis.call('ZREM', base .. ':deadlines', id) end
      out[#out + 1] = {id, f[1], f[2], cls, attempts, f[4], f[5], f[6], f[8] or ''}
    end
  end
  redis.call('HSET', base .. ':sched', 'credit:interactive', fmt(credits[1]), 'credit:standard', fmt(credits[2]),
    'credit:batch', fmt(credits[3]))
  local second = fmt(math.floor(now / 1000))
  if #out > 0 then
    local dk = base .. ':disp:' .. second
    redis.call('INCRBY', dk, #out)
    redis.call('PEXPIRE', dk, 120000)
  end
  -- The drain rate shedding uses: what this take got since the previous take, when that one left requests
  -- waiting (a backlog the whole time: the groups, not the arrivals, set the pace).
  local since = tonumber(redis.call('GET', base .. ':drainat'))
  if since and #out > 0 and now >= since then
    local bk, mk, qk = base .. ':bdisp:' .. second, base .. ':bms:' .. second, base .. ':bms2:' .. second
    redis.call('INCRBY', bk, #out)
    redis.call('INCRBY', mk, fmt(now - since))
    -- squared gaps: sum(gap^2) / sum(gap) is the gap a waiting request sits in (the drain's round)
    redis.call('INCRBY', qk, fmt((now - since) * (now - since)))
    redis.call('PEXPIRE', bk, 120000)
    redis.call('PEXPIRE', mk, 120000)
    redis.call('PEXPIRE', qk, 120000)
  end
  if depth[1] + depth[2] + depth[3] > 0 then
    if #out > 0 or not since then redis.call('SET', base .. ':drainat', fmt(now), 'PX', 120000) end
  else
    redis.call('DEL', base .. ':drainat')
  end
  return out, depth[1] + depth[2] + depth[3]
end
`;

/**
 * ARGV: base id bodyHash body tenant cls increment deadline now shed cost trace [take ARGV...]
 * -> {outcome, state, taken?, readyLeft?} (readyLeft: with take arguments, the requests still ready after it)
 * With TAKE's arguments after its own (the submitting controller's dispatcher has room for one more), the same
 * script then hands out the queue's next request in the usual order, most often this one: one round trip for
 * submit and take, and no PUBLISH when what was queued is already dispatched. The order is TAKE's, so nothing
 * waiting ahead is passed over (priority and fairness as if the dispatcher had taken it right after).
 */
export const SUBMIT = `${PRELUDE}${TAKE_NEXT}
local base, id, bh, body, tenant, cls = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local inc, deadline, now, shed = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local rk = base .. ':r:' .. id
local existing = redis.call('HMGET', rk, 'bh', 'state')
if existing[1] then
  if existing[1] == bh then return {'attached', existing[2]} end
  return {'conflict', existing[2]}
end
if shed == '1' then return {'shed', ''} end
if deadline > 0 and deadline <= now then return {'expired', ''} end
local v = tonumber(redis.call('HGET', base .. ':sched', 'v:' .. cls)) or 0
local last = tonumber(redis.call('HGET', base .. ':lastf', cls .. ':' .. tenant)) or 0
local tag = math.max(v, last) + inc
redis.call('HSET', base .. ':lastf', cls .. ':' .. tenant, fmt(tag))
redis.call('HSET', rk, 'body', body, 'bh', bh, 'tenant', tenant, 'cls', cls, 'cost', ARGV[11], 'tag', fmt(tag),
  'deadline', fmt(deadline), 'submitted', fmt(now), 'state', 'queued', 'attempts', '0', 'owner', '', 'lease', '0',
  'trace', ARGV[12] or '')
redis.call('ZADD', base .. ':ready:' .. cls, fmt(tag), id)
if deadline > 0 then redis.call('ZADD', base .. ':deadlines', fmt(deadline), id) end
local taken, left = {}, nil
if #ARGV > 12 then taken, left = takeNext(13) end
for _, r in ipairs(taken) do
  if r[1] == id then return {'enqueued', 'dispatched', taken, left} end
end
redis.call('PUBLISH', base .. ':wake', cls)
return {'enqueued', 'queued', taken, left}
`;

/** ARGV: see TAKE_NEXT -> the list it hands out */
export const TAKE = `${PRELUDE}${TAKE_NEXT}
local out = takeNext(1)
return out
`;

/** ARGV: base owner now leaseMs id... -> {lost ids, cancel-requested ids} */
export const RENEW = `
local base, owner, now, leaseMs = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local lost, cancel = {}, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local rk = base .. ':r:' .. id
  local f = redis.call('HMGET', rk, 'state', 'owner', 'cancel')
  if f[1] == 'dispatched' and f[2] == owner then
    local until_ = string.format('%.0f', now + leaseMs)
    redis.call('HSET', rk, 'lease', until_)
    redis.call('ZADD', base .. ':leases', until_, id)
    if f[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
`;

/**
 * Marks a dispatched request finished when `owner` holds it (1), else nothing (0): SETTLE's `finished`, and the
 * stream log's APPEND when the owner's writer appends the Finished (stream-log.ts), so the log's end and the
 * queue's take one script, not two round trips.
 */
export const FINISH_OWNED = `
local function finishOwned(base, owner, id, now, retainMs)
  local rk = base .. ':r:' .. id
  local f = redis.call('HMGET', rk, 'state', 'owner')
  if f[1] ~= 'dispatched' or f[2] ~= owner then return 0 end
  redis.call('ZREM', base .. ':leases', id)
  redis.call('HSET', rk, 'state', 'finished', 'ended', string.format('%.0f', now))
  redis.call('HDEL', rk, 'body')
  redis.call('PEXPIRE', rk, retainMs)
  return 1
end
`;

/**
 * ARGV: base owner id how now maxAttempts retainMs code msg; how = finished | failed | release
 * -> 1 when the caller owned the request, 0 when it did not (its lease ran out and it was handed on)
 */
export const SETTLE = `${PRELUDE}${FINISH_OWNED}
local base, owner, id, how, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local maxAttempts, retainMs = tonumber(ARGV[6]), tonumber(ARGV[7])
if how == 'finished' then return finishOwned(base, owner, id, now, retainMs) end
local rk = base .. ':r:' .. id
local f = redis.call('HMGET', rk, 'state', 'owner')
if f[1] ~= 'dispatched' or f[2] ~= owner then return 0 end
if how == 'failed' then
  redis.call('ZREM', base .. ':leases', id)
  terminate(base, id, 'failed', ARGV[8], ARGV[9], now, retainMs)
else
  handBack(base, id, now, maxAttempts, retainMs, ARGV[9])
end
return 1
`;

/** ARGV: base id now retainMs tenant ('' = any) -> {outcome, owner-or-state} */
export const CANCEL = `${PRELUDE}
local base, id, now, retainMs, tenant = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local rk = base .. ':r:' .. id
local f = redis.call('HMGET', rk, 'state', 'cls', 'owner', 'tenant')
if not f[1] then return {'not_found', ''} end
-- Another tenant's request is as unknown as a missing one (ids must not reveal what others run).
if tenant ~= '' and f[4] ~= tenant then return {'not_found', ''} end
if f[1] == 'queued' then
  redis.call('ZREM', base .. ':ready:' .. f[2], id)
  redis.call('ZREM', base .. ':deadlines', id)
  terminate(base, id, 'cancelled', 'cancelled', 'request cancelled before dispatch', now, retainMs)
  return {'removed', ''}
end
if f[1] == 'dispatched' then
  redis.call('HSET', rk, 'cancel', '1')
  redis.call('PUBLISH', base .. ':cancel', id)
  return {'dispatched', f[3]}
end
return {'ended', f[1]}
`;

/** ARGV: base now maxAttempts retainMs limit -> {reclaimed, expired} */
export const MAINTAIN = `${PRELUDE}
local base, now, maxAttempts, retainMs, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
return {reclaim(base, now, maxAttempts, retainMs, limit), sweepDeadlines(base, now, retainMs, limit)}
`;
