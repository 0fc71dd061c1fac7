-- wrk script: the tasks "stress" mix. 80% GET /tasks/:id over ids read from
-- the file named by env TASK_IDS (one per line), 20% writes split between
-- POST /tasks, PATCH /tasks/:id and PUT /tasks/:id. Seeded per thread.
local ids = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  local path = os.getenv("TASK_IDS")
  for line in io.lines(path) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  math.randomseed(tonumber(seed or 1) * 7919)
end

local json = { ["Content-Type"] = "application/json" }

function request()
  local r = math.random(100)
  local id = ids[math.random(#ids)]
  if r <= 80 then
    return wrk.format("GET", "/tasks/" .. id)
  elseif r <= 87 then
    return wrk.format("POST", "/tasks", json, '{"title":"load test","priority":2}')
  elseif r <= 94 then
    return wrk.format("PATCH", "/tasks/" .. id, json, '{"status":"in_progress"}')
  else
    return wrk.format("PUT", "/tasks/" .. id, json, '{"title":"replaced","status":"done","priority":3}')
  end
end
