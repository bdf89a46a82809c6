-- The other live processes with players in a room (whose snapshots a room opening here
-- waits for).
-- KEYS: 1 processes, 2 the room's seats hash
-- ARGV: 1 this process
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[2])
local peers = {}
for i = 1, #fields, 2 do
  local process, n = fields[i], tonumber(fields[i + 1]) or 0
  local deadline = redis.call('ZSCORE', KEYS[1], process)
  if process ~= ARGV[1] and n > 0 and deadline and tonumber(deadline) >= now then
    peers[#peers + 1] = process
  end
end
return peers
