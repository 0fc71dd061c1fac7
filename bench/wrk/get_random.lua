-- wrk script: GET /tasks/:id over ids read from the file named by env TASK_IDS.
local ids = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  for line in io.lines(os.getenv("TASK_IDS")) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  math.randomseed(tonumber(seed or 1) * 104729)
end

function request()
  return wrk.format("GET", "/tasks/" .. ids[math.random(#ids)])
end
