-- The sliding window counter of the crate's `WindowState::check`, atomically, on the
-- server's clock.
--
-- KEYS[1]: the key's counters, a hash {w = window index, p = previous count, c = current}.
-- ARGV: window in µs, limit, "1" to count an admitted request ("0": peek, write nothing).
-- Returns {now in µs since the Unix epoch, window index, previous count, current count
-- before this request, 1 if admitted else 0}.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / w)
if idx * w > now then idx = idx - 1 elseif (idx + 1) * w <= now then idx = idx + 1 end
local st = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local sw = tonumber(st[1])
local p = tonumber(st[2]) or 0
local c = tonumber(st[3]) or 0
if sw ~= idx then
  if sw ~= nil and sw + 1 == idx then p = c else p = 0 end
  c = 0
end
local elapsed = now - idx * w
local allowed = 0
if p * (w - elapsed) + (c + 1) * w <= limit * w then allowed = 1 end
if allowed == 1 and ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'w', idx, 'p', p, 'c', c + 1)
  redis.call('PEXPIRE', KEYS[1], math.ceil(((idx + 2) * w - now) / 1000))
end
return {now, idx, p, c, allowed}
