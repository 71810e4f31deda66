-- wrk script for `make bench`: POSTs the request body in the file named by $SLUICE_BENCH_BODY
-- and, when the run ends, prints one line `SLUICE_BENCH {json}` with the latency percentiles (µs)
-- and the counts `bench` reads.

local path = os.getenv("SLUICE_BENCH_BODY")
local file = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
wrk.body = file:read("*a")
file:close()
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SLUICE_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
