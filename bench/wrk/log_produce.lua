-- Produce load for wrk against the log's HTTP API: one 1 KiB record per request (string
-- format), acks from LOG_ACKS (default fsync). Used by bench/log_compare.ts.
local acks = os.getenv("LOG_ACKS") or "fsync"
local body = '{"format":"string","acks":"' .. acks .. '","records":[{"value":"' ..
  string.rep("x", 1024) .. '"}]}'

request = function()
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
