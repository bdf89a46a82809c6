-- Seats one player of this process in the first room with space, over every process,
-- opening a room when all are full. A room's head count is the sum of the counts of the
-- live processes (those whose presence deadline is in the future); the counts of
-- processes that are gone are deleted on the way. Atomic, like every script.
-- KEYS: 1 processes, 2 rooms (sorted set, scored by id), 3 room id counter
-- ARGV: 1 this process, 2 capacity (0 = one room without limit), 3 seats key prefix
-- Returns { room, peer, peer, ... }: the room and the other live processes with players in it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, capacity, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local function head_count(room)
  local key = prefix .. room
  local fields = redis.call('HGETALL', key)
  local total, peers = 0, {}
  for i = 1, #fields, 2 do
    local process, n = fields[i], math.max(tonumber(fields[i + 1]) or 0, 0)
    local deadline = redis.call('ZSCORE', KEYS[1], process)
    if process == me then
      total = total + n
    elseif deadline and tonumber(deadline) >= now then
      total = total + n
      if n > 0 then peers[#peers + 1] = process end
    else
      redis.call('HDEL', key, process)
    end
  end
  return total, peers
end

local function take(room, peers)
  redis.call('HINCRBY', prefix .. room, me, 1)
  local reply = { tostring(room) }
  for _, p in ipairs(peers) do reply[#reply + 1] = p end
  return reply
end

redis.call('ZADD', KEYS[2], 'NX', 1, 1) -- the first room always exists
for _, room in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local total, peers = head_count(room)
  if capacity == 0 or total < capacity then
    return take(tonumber(room), peers)
  end
end
local highest = tonumber(redis.call('ZRANGE', KEYS[2], -1, -1)[1])
local room = redis.call('INCR', KEYS[3])
if room <= highest then
  room = highest + 1
  redis.call('SET', KEYS[3], room)
end
redis.call('ZADD', KEYS[2], room, room)
return take(room, {})
