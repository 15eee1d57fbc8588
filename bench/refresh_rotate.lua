-- wrk script: the refresh_token grant with rotation ON.
--
-- Every successful refresh returns a new refresh_token and marks the old one
-- used; presenting a used token again revokes the whole chain. So each wrk
-- connection must follow its own chain: run wrk with as many threads as
-- connections (-tN -cN: one connection per thread, one request in flight),
-- give each thread its own starting token, and after every 200 continue with
-- the refresh_token of that response.
--
-- Configured through the environment (set by bench/run.sh):
--   BENCH_TOKENS_FILE  starting refresh tokens, one per line, at least one per thread
--   BENCH_AUTH         the Authorization header value ("Basic ...")
--
-- done() prints the same BENCH_RESULT line as post.lua; "bad" counts every
-- response that is not 200, or is a 200 without a refresh_token. A correct
-- run has bad=0 (one wrong token poisons its chain, so errors snowball).

local tokens_file = os.getenv("BENCH_TOKENS_FILE")
local auth = os.getenv("BENCH_AUTH") or ""

-- Per-thread state (each wrk thread runs its own copy of this file; `token`
-- is set from setup() through thread:set before the first request).
bad = 0
first_bad = ""
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = auth,
}

-- Main state: hand out one starting token per thread.
local threads = {}
local starting = nil
function setup(thread)
  if starting == nil then
    starting = {}
    for line in io.lines(tokens_file) do
      if line ~= "" then table.insert(starting, line) end
    end
  end
  local i = #threads + 1
  local token = starting[i]
  if token == nil then
    error(string.format("refresh_rotate.lua: thread %d has no starting token (%d in %s)",
      i, #starting, tokens_file))
  end
  thread:set("token", token)
  table.insert(threads, thread)
end

function request()
  return wrk.format("POST", nil, headers,
    "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, hdrs, body)
  if status == 200 then
    -- serde_json writes "refresh_token":"<base64url>" (no spaces); allow them anyway.
    local next_token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if next_token then
      token = next_token
      return
    end
  end
  bad = bad + 1
  if first_bad == "" then
    first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
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
