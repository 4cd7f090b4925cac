-- The crate's sliding windows for one request, all of a key's windows in one atomic step,
-- on the server's clock: the exact log of `limit::log` (the admission ticks of the last
-- `limit` admitted requests) or, above the exact range, the sliding window counter of
-- `limit::window`.
--
-- KEYS[1]: the key's hash; one field per window (named by the window in µs) holding either
--   the admission ticks, oldest first, separated by spaces (a log), or "index prev curr"
--   (a counter).
-- ARGV[1]: "" (the server's TIME) or a time in µs (tests only).
-- ARGV[2]: "1" to record the request when it fits every window ("0": peek, write nothing).
-- ARGV[3..]: four per window: field, limit, window in µs, tick shift (-1: counter).
-- Returns {now in µs, 1 if the request fit every window else 0, then three per window:
--   log: live admissions, the tick whose expiry admits one more (when live >= limit,
--   else 0), the newest tick (0 when none); counter: window index, previous and current
--   count before this request}.
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local record = ARGV[2] == '1'
local n = (#ARGV - 2) / 4
local reply = {now, 0}
local fits = true
local state = {}
for i = 1, n do
  local field, limit = ARGV[4 * i - 1], tonumber(ARGV[4 * i])
  local w, shift = tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 2])
  local v = redis.call('HGET', KEYS[1], field)
  if shift >= 0 then
    local step = 2 ^ shift
    local live = {}
    if v then
      for s in string.gmatch(v, '%d+') do
        local t = tonumber(s)
        if t * step + w > now then live[#live + 1] = t end
      end
    end
    local unblock, newest = 0, 0
    if #live > 0 then newest = live[#live] end
    if #live >= limit then
      unblock = live[#live - limit + 1]
      fits = false
    end
    state[i] = live
    reply[#reply + 1] = #live
    reply[#reply + 1] = unblock
    reply[#reply + 1] = newest
  else
    local idx = math.floor(now / w)
    if idx * w > now then idx = idx - 1 elseif (idx + 1) * w <= now then idx = idx + 1 end
    local sw, p, c
    if v then
      local a, b, d = string.match(v, '^(%d+) (%d+) (%d+)$')
      sw, p, c = tonumber(a), tonumber(b) or 0, tonumber(d) or 0
    end
    p, c = p or 0, c or 0
    if sw ~= idx then
      if sw ~= nil and sw + 1 == idx then p = c else p = 0 end
      c = 0
    end
    if p * (w - (now - idx * w)) + (c + 1) * w > limit * w then fits = false end
    state[i] = {idx, p, c}
    reply[#reply + 1] = idx
    reply[#reply + 1] = p
    reply[#reply + 1] = c
  end
end
if fits then reply[2] = 1 end
if fits and record then
  local ttl = 1
  for i = 1, n do
    local field, limit = ARGV[4 * i - 1], tonumber(ARGV[4 * i])
    local w, shift = tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 2])
    local until_us
    if shift >= 0 then
      local step = 2 ^ shift
      local live = state[i]
      local tick = math.ceil(now / step)
      if #live > 0 and tick <= live[#live] then tick = live[#live] end
      live[#live + 1] = tick
      local out = {}
      for j = math.max(1, #live - limit + 1), #live do
        out[#out + 1] = string.format('%.0f', live[j])
      end
      redis.call('HSET', KEYS[1], field, table.concat(out, ' '))
      until_us = tick * step + w - now
    else
      local s = state[i]
      redis.call('HSET', KEYS[1], field,
        string.format('%.0f %.0f %.0f', s[1], s[2], s[3] + 1))
      until_us = (s[1] + 2) * w - now
    end
    if until_us > ttl then ttl = until_us end
  end
  -- A controlled clock need not run with real time: keep its keys a minute at least.
  if ARGV[1] ~= '' and ttl < 60000000 then ttl = 60000000 end
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000))
end
return reply
