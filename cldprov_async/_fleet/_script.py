"""The shared gate's Lua script (run atomically by Redis, loaded once, then by SHA).

Its three keys share the budget's hash tag, so it runs on Redis Cluster too.

Imports nothing.
"""

SCRIPT = """\
-- The shared gate's one script: report what answers said, then take permits.
-- KEYS[1] state hash, KEYS[2] leases (zset: lease id -> expiry, wall seconds),
-- KEYS[3] members (zset: process -> expiry): the processes sharing the budget
-- ARGV: now, lease_expiry, n_normal, n_bulk, n_extra, reserve_fraction, owner, seq,
--       state_ttl, leases_ttl, member, member_ttl, proposal,
--       then records of 5: kind, lease, a, b, c
--   owner is member .. '.' .. epoch: a process takes a new epoch each time it falls back
--   proposal: -1, or the wall time a process back from a gap proposes the fleet rejoins
--   kind "a": an answer (a remaining, b reset, c limit; -1 when not said)
--   kind "f": an attempt without answer;  "g": an unused permit given back
--   kind "u": an answer announcing no budget;  "b": a rejection closing the gate until a
--   kind "p": drop this member's leases of earlier epochs (lease: the current owner)
--   kind "q": this member leaves (its client closed)
-- Returns: granted normal, bulk, extra; when the window reopens for normal and bulk calls;
--   then what a process needs if Redis goes away: tokens, limit, the last window end the
--   server announced, members, the last rejoin instant (ahead while a gap lasts), the window
--   length, the end of the window the tokens count for (-1 when unknown)
local state, leases, members = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local margin = 0.05
-- No permit of a window in its last `closing` seconds while less than half its limit is
-- left: sent after a round trip, under load, it would land in the next window (and a fleet
-- that spends its budget would find the next one short). A budget too large to run out
-- loses nothing to this.
local closing = 0.1

local function num(field)
  local v = redis.call('HGET', state, field)
  if v then return tonumber(v) end
  return nil
end
local tokens, limit, reset = num('tokens'), num('limit'), num('reset')
local blocked, unlimited = num('blocked') or 0, num('unlimited') or 0
local last, window, rejoin = num('last'), num('window'), num('rejoin')

redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
redis.call('ZREMRANGEBYSCORE', members, '-inf', now)
local member, member_ttl = ARGV[11], tonumber(ARGV[12])
redis.call('ZADD', members, now + member_ttl, member)
redis.call('EXPIRE', members, math.ceil(member_ttl) + 1)

local i = 14
while i + 4 <= #ARGV do
  local kind, lease = ARGV[i], ARGV[i + 1]
  local removed = redis.call('ZREM', leases, lease)
  if kind == 'a' then
    local remaining, r, l = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    unlimited = 0
    if l >= 0 then limit = l end
    local ok = true
    if r >= 0 then
      if last and r > last + 0.5 and r - last <= 3600 then
        window = math.min(window or (r - last), r - last)
      end
      if last == nil or r > last then last = r end
      r = r + margin
      if r <= now then ok = false end -- from a window that has ended
    else
      r = nil
    end
    if ok and remaining >= 0 then
      local fresh = math.max(0, remaining - redis.call('ZCARD', leases))
      if r and (reset == nil or r > reset + 0.5) then
        reset, tokens = r, fresh
      elseif tokens == nil then
        tokens = fresh
      else
        tokens = math.min(tokens, fresh)
      end
    end
  elseif kind == 'g' then
    if removed == 1 and tokens ~= nil then tokens = tokens + 1 end
  elseif kind == 'u' then
    if limit == nil then unlimited = 1 end
  elseif kind == 'b' then
    blocked = math.max(blocked, tonumber(ARGV[i + 2]))
    tokens = 0
  elseif kind == 'q' then
    redis.call('ZREM', members, member)
  elseif kind == 'p' then
    local mine, current = member .. '.', lease .. ':'
    for _, held in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
      if string.sub(held, 1, #mine) == mine and string.sub(held, 1, #current) ~= current then
        redis.call('ZREM', leases, held)
      end
    end
  end
  i = i + 5
end

-- A gap: until the fleet rejoins together, every process keeps to its own share. The first
-- proposal sets the instant; a process that missed it by less than `late` seconds (a slow
-- probe) is told the passed instant and joins at once, rather than starting a new gap.
local late = 5
local proposal = tonumber(ARGV[13])
if proposal >= 0 and (rejoin == nil or now - rejoin >= late) then rejoin = proposal end
local gap = rejoin ~= nil and rejoin > now

local n_normal, n_bulk, n_extra = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local got_n, got_b, got_e = 0, 0, 0
local opens_n, opens_b = -1, -1
local inflight = redis.call('ZCARD', leases)

if gap then
  opens_n, opens_b = rejoin, rejoin
elseif now < blocked then
  opens_n, opens_b = blocked, blocked
elseif unlimited == 1 then
  got_n, got_b, got_e = n_normal, n_bulk, n_extra
else
  if reset and now >= reset then
    -- the window rolled: the last known limit, minus what may land in it
    if limit then tokens = math.max(0, limit - inflight) else tokens = nil end
    reset = nil
  end
  if tokens == 0 and reset == nil and inflight == 0 then tokens = nil end
  if tokens == nil then
    if inflight == 0 and n_normal + n_bulk > 0 then
      -- nobody knows the budget: one probe for the whole fleet
      if n_normal > 0 then got_n = 1 else got_b = 1 end
    end
  elseif reset and now >= reset - margin - closing and limit and tokens < limit / 2 then
    opens_n, opens_b = reset, reset
  else
    local floor = 0
    if reset and limit then floor = math.ceil(limit * tonumber(ARGV[6]) - 1e-9) end
    got_n = math.min(n_normal, tokens)
    tokens = tokens - got_n
    got_b = math.max(0, math.min(n_bulk, tokens - floor))
    tokens = tokens - got_b
    if got_n == n_normal and got_b == n_bulk and tokens - floor >= 4 * n_extra then
      got_e = n_extra
      tokens = tokens - got_e
    end
    if reset then
      if tokens <= 0 then opens_n = reset end
      if tokens <= floor then opens_b = reset end
    end
  end
end

local total = got_n + got_b + got_e
local seq = tonumber(ARGV[8])
local expiry = tonumber(ARGV[2])
for k = 1, total do
  redis.call('ZADD', leases, expiry, ARGV[7] .. ':' .. (seq + k - 1))
end

local function put(field, v)
  if v == nil then redis.call('HDEL', state, field) else
    redis.call('HSET', state, field, string.format('%.17g', v)) end
end
put('tokens', tokens); put('limit', limit); put('reset', reset)
put('blocked', blocked); put('unlimited', unlimited)
put('last', last); put('window', window); put('rejoin', rejoin)
redis.call('EXPIRE', state, tonumber(ARGV[9]))
if redis.call('EXISTS', leases) == 1 then redis.call('EXPIRE', leases, tonumber(ARGV[10])) end

local function out(v)
  if v == nil then return '-1' end
  return string.format('%.17g', v)
end
-- the end of the window `tokens` count for: the one answers told, else the one rolled into
local ends = nil
if reset then ends = reset - margin elseif last and window then ends = last + window end
return {got_n, got_b, got_e, tostring(opens_n), tostring(opens_b),
        out(tokens), out(limit), out(last), redis.call('ZCARD', members), out(rejoin), out(window),
        out(ends)}
"""
