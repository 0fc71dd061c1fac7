-- Fetch load for wrk against the log's HTTP API: one record at a random offset among the last
-- LOG_RECENT (default 1000) below LOG_END, JSON (string format). Used by bench/log_compare.ts.
local last = tonumber(os.getenv("LOG_END") or "1000")
local recent = tonumber(os.getenv("LOG_RECENT") or "1000")
local path = os.getenv("LOG_PATH") or "/topics/b/partitions/0/records"

request = function()
  local offset = last - 1 - math.random(0, recent - 1)
  if offset < 0 then offset = 0 end
  return wrk.format("GET", path .. "?offset=" .. offset .. "&max_bytes=2048&format=string")
end
