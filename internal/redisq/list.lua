-- list.lua (after common.lua): the members holding, then those waiting,
-- after reclaiming expired ones.
reclaim()
finish()
local out = redis.call('ZRANGE', H, 0, -1)
for _, m in ipairs(redis.call('ZRANGE', Q, 0, -1)) do out[#out + 1] = m end
return out
