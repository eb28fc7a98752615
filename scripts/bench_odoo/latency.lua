-- wrk's report as one line the benchmark parses: requests per second,
-- latency p50 and p99 in microseconds, completed requests, and errors
-- (connect, read, write, timeout, and responses other than 2xx or 3xx).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.2f p50_us=%d p99_us=%d requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), summary.requests,
    e.connect + e.read + e.write + e.timeout + e.status))
end
