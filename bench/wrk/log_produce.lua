-- Produce load for wrk against the log's HTTP API: one 1 KiB record per request (string
-- format), acks from LOG_ACKS (default fsync). The request is built once (no Lua call per
-- request). Used by bench/log_compare.ts.
local acks = os.getenv("LOG_ACKS") or "fsync"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"format":"string","acks":"' .. acks .. '","records":[{"value":"' ..
  string.rep("x", 1024) .. '"}]}'
