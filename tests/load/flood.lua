-- wrk script: a flood of distinct random keys (well-formed, none stored), counting
-- responses by status. Every token is distinct: thread id + per-thread counter + random
-- filler, 32 characters of body.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

function init(args)
  counts = {}
  n = 0
  math.randomseed(os.time() * 1000 + id)
end

function request()
  n = n + 1
  local filler = {}
  for i = 1, 18 do
    local k = math.random(1, 62)
    filler[i] = string.sub(alnum, k, k)
  end
  local token = string.format("ark_live_%02d%012d", id, n) .. table.concat(filler)
  return wrk.format("GET", "/v1/limits", { ["Authorization"] = "Bearer " .. token })
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
