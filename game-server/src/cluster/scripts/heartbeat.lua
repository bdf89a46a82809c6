-- Presence: registers this process as alive until now + TTL, forgets processes whose
-- deadline passed, raises the id counters to this process's floors (Redis may have
-- restarted without its data), and returns the processes alive now.
-- KEYS: 1 processes (sorted set), 2 player id counter, 3 room id counter
-- ARGV: 1 this process, 2 TTL in ms, 3 highest player id taken here, 4 highest room id here
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local floors = { [KEYS[2]] = tonumber(ARGV[3]), [KEYS[3]] = tonumber(ARGV[4]) }
for key, floor in pairs(floors) do
  if tonumber(redis.call('GET', key) or '0') < floor then
    redis.call('SET', key, floor)
  end
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
