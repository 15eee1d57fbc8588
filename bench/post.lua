-- wrk script: one fixed form POST, repeated (client_credentials, introspection,
-- refresh without rotation).
--
-- Configured through the environment (set by bench/run.sh):
--   BENCH_BODY    the application/x-www-form-urlencoded body
--   BENCH_AUTH    the whole Authorization header value ("Basic ..."), optional
--   BENCH_EXPECT  optional: a string every 200 body must contain (e.g.
--                 '"active":true'); a response that is not 200 or lacks it
--                 counts as "bad". Unset: no per-response check (wrk still
--                 counts non-2xx/3xx itself).
--
-- done() prints one machine-readable line that run.sh parses:
--   BENCH_RESULT requests=.. duration_us=.. non2xx=.. socket_errors=.. bad=.. p50_us=.. p99_us=..

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or ""
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local expect = os.getenv("BENCH_EXPECT")
if expect == "" then expect = nil end

-- Per-thread counters (each wrk thread runs its own copy of this file).
bad = 0
first_bad = ""

-- Main state: remember the threads so done() can add up their counters.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

if expect then
  -- Only defined when asked: a response() makes wrk hand every body to Lua.
  function response(status, headers, body)
    if status ~= 200 or not string.find(body, expect, 1, true) then
      bad = bad + 1
      if first_bad == "" then
        first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (t:get("bad") or 0)
    local fb = t:get("first_bad")
    if fb and fb ~= "" then
      io.write("BENCH_FIRST_BAD " .. fb:gsub("\n", " ") .. "\n")
    end
  end
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d bad=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, total_bad,
    latency:percentile(50), latency:percentile(99)))
end
