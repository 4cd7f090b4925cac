-- wrk script: a mix of valid, invalid, revoked, over-limit, forbidden and malformed
-- requests against the demo server, counting responses by status. Keys come from the
-- environment (set by soak.sh): ARK_VALID, ARK_REVOKED, ARK_LIMITED, ARK_READONLY.
--
-- Per 20 requests: 8 valid (200), 3 unknown key (401), 2 revoked (401), 2 over-limit
-- (429 once the 1 request/s quota is spent), 2 forbidden (403), 3 malformed (401).

local valid = os.getenv("ARK_VALID")
local revoked = os.getenv("ARK_REVOKED")
local limited = os.getenv("ARK_LIMITED")
local readonly = os.getenv("ARK_READONLY")

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  math.randomseed(os.time() * 1000 + id)
end

local function bearer(token)
  return { ["Authorization"] = "Bearer " .. token }
end

local malformed = {
  { ["Authorization"] = "Bearer ark_live_short" },
  { ["Authorization"] = "Basic dXNlcjpwYXNz" },
  { ["Authorization"] = "Bearer ark_live_0123456789abcdef!!" },
  { ["Authorization"] = "Bearer\tark_live_0123456789abcdefXYZ" },
  { ["Authorization"] = "Bearer ark_prod_0123456789abcdefXYZ" },
  {},
}

function request()
  counter = counter + 1
  local slot = counter % 20
  if slot < 8 then
    return wrk.format("GET", "/v1/limits", bearer(valid))
  elseif slot < 11 then
    -- unknown, well-formed: the valid key with its last two characters changed
    local t = string.sub(valid, 1, -3) .. string.format("%02d", math.random(0, 99))
    if t == valid then t = string.sub(valid, 1, -3) .. "zz" end
    return wrk.format("GET", "/v1/limits", bearer(t))
  elseif slot < 13 then
    return wrk.format("GET", "/v1/limits", bearer(revoked))
  elseif slot < 15 then
    return wrk.format("GET", "/v1/limits", bearer(limited))
  elseif slot < 17 then
    return wrk.format("POST", "/v1/emails", bearer(readonly), "{}")
  else
    return wrk.format("GET", "/v1/limits", malformed[(counter % #malformed) + 1])
  end
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for status, n in pairs(c) do
      total[status] = (total[status] or 0) + n
    end
  end
  local line = "STATUS"
  for status, n in pairs(total) do
    line = line .. string.format(" %d=%d", status, n)
  end
  io.write(line .. "\n")
  local e = summary.errors
  io.write(string.format("ERRORS connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("TOTAL requests=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99)))
end
