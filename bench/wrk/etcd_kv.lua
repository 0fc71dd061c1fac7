-- etcd v3 JSON gateway load for wrk: PUT or linearizable GET (range) of 16-byte keys over a
-- keyspace, 100-byte values. Environment: ETCD_OP=put|get (default put), ETCD_KEYS (10000),
-- ETCD_VALUE_BYTES (100). Used by bench/metastore_compare.ts against etcd and the metastore.

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local op = os.getenv("ETCD_OP") or "put"
local keys = tonumber(os.getenv("ETCD_KEYS") or "10000")
local value = b64(string.rep("v", tonumber(os.getenv("ETCD_VALUE_BYTES") or "100")))
local encoded = {}

local function key(i)
  local k = encoded[i]
  if k == nil then
    k = b64(string.format("%016d", i))
    encoded[i] = k
  end
  return k
end

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if op == "get" then
    wrk.path = "/v3/kv/range"
  else
    wrk.path = "/v3/kv/put"
  end
end

function request()
  local k = key(math.random(0, keys - 1))
  if op == "get" then
    return wrk.format(nil, nil, nil, '{"key":"' .. k .. '"}')
  end
  return wrk.format(nil, nil, nil, '{"key":"' .. k .. '","value":"' .. value .. '"}')
end
