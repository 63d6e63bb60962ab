-- Apply canonical events atomically, in order: for each, dedupe, update the referrer's and
-- friend's state, append to the event log, mark touched contacts dirty for every enabled
-- connector. One call takes a batch (one round trip, one script start-up), and Redis runs a
-- script whole, so each event's step is atomic (and the batch with it).
-- ARGV[1]: a JSON array of operations built by hub/core/ledger.py, each with the event as logged.
-- ARGV[2]: the key prefix (hub.core.keys.PREFIX; a preview passes a scratch prefix of its own).
-- ARGV[3] (optional): the batch's settings, see the end; its `op` holds what every operation
-- shares (conns, wins, cap, ttl, maxlen), so the JSON carries it once rather than once an event.
-- ARGV[4] (optional): the events as logged, one JSON text a line, in the operations' order (an
-- operation's `log` then need not be JSON inside JSON). An operation's own fields win.
-- Returns {one 1 (applied) or 0 (a duplicate event id) per operation, flags set (see the end)},
-- or, when a bound would break (see check), {{}, {}, {event index, field, reason}} having
-- written nothing.
local P = ARGV[2]
local null = cjson.null
local op, ts

local function present(v) return (type(v) == 'string' and v ~= '') or type(v) == 'number' end
local ROLES = {'referrer', 'friend', 'contact'}
-- A number as redis.call sends one (%.17g), formatted once for all the calls that send it.
local texts = {}
local function number(v)
  local out = texts[v]
  if not out then
    out = string.format('%.17g', v)
    texts[v] = out
  end
  return out
end
local function key(email) return P .. 'c:' .. email end
-- An erased person is known only by the keyed hash hub/core/ledger.py sends for each party
-- (op.tags); a stored referred_by never names an erased person (erasure clears it). Every tag of
-- the batch is looked up in one MGET before the first event (`erased_tags`, see the end), and an
-- erasure in the batch adds its tag, so each event sees every erasure before it.
local erased_tags = {}
local function erased(email)
  local t = op.tags and op.tags[email]
  return t ~= nil and erased_tags[t] == true
end

-- last writer wins by occurred_at; ties broken by value so arrival order never matters. Every
-- field's value and timestamp are read in one HMGET, and the winners written in one HSET.
local function lww(email, values)
  local names, ask = {}, {}
  for f, v in pairs(values) do
    if present(v) then
      names[#names + 1] = f
      ask[#ask + 1] = f .. '@'
      ask[#ask + 1] = f
    end
  end
  if #names == 0 then return end
  local k = key(email)
  local cur = redis.call('HMGET', k, unpack(ask))
  local set = {}
  for i, f in ipairs(names) do
    local v, at = tostring(values[f]), cur[2 * i - 1]
    if (not at) or ts > at or (ts == at and v > (cur[2 * i] or '')) then
      set[#set + 1] = f
      set[#set + 1] = v
      set[#set + 1] = f .. '@'
      set[#set + 1] = ts
    end
  end
  if #set > 0 then redis.call('HSET', k, unpack(set)) end
end

-- the earliest (or latest) timestamp wins, whatever the arrival order
local function keep_min(email, field, value)
  local cur = redis.call('HGET', key(email), field)
  if (not cur) or value < cur then redis.call('HSET', key(email), field, value) end
end

-- What the batch's events touched, settled once per contact after the last event (see the end):
-- `marks` (email -> the op that last marked it) are made dirty for every connector and have
-- their version bumped; `latest` (email -> the latest occurred_at of an event that touched it)
-- is the contact's last_activity_at when later than the stored one. Nothing reads either within
-- the batch, and Redis runs the script whole, so no reader can tell the difference from one
-- write per event. An erasure drops the person from both.
local marks, latest = {}, {}
local function mark(email) marks[email] = op end

local function touch(email)
  if present(email) and not erased(email) then
    mark(email)
    if not latest[email] or ts > latest[email] then latest[email] = ts end
    return true
  end
  return false
end

-- A referrer's flag, address and counters are set together, once (HSETNX: a write that changes
-- nothing is still copied to the AOF and to a replica, and most events name someone the ledger
-- already holds); with the flag present the rest is there too, so one call tells.
local function as_referrer(r)
  local k = key(r)
  if redis.call('HSETNX', k, 'is_referrer', '1') == 1 then
    redis.call('HSETNX', k, 'email', r)
    redis.call('HSETNX', k, 'invites_sent', 0)
    redis.call('HSETNX', k, 'friends_registered', 0)
    redis.call('HSETNX', k, 'friends_converted', 0)
  end
end

-- Credit referrer r with everything friend f has done so far. The referrer's links hash
-- (`c:<r>:n`) keeps what was credited, so it runs on every friend event and out-of-order arrival
-- ends in the same state: HSETNX answers 1 only the first time.
local function credit(r, f)
  if not present(r) or erased(r) or r == f then return end
  touch(r)
  as_referrer(r)
  local member = redis.sha1hex(f)
  local k = key(r)
  local n = k .. ':n'
  if redis.call('HSETNX', n, 'g:' .. member, '1') == 1 then
    redis.call('HINCRBY', k, 'friends_registered', '1')
  end
  if redis.call('HEXISTS', key(f), 'converted_at') == 1 then
    if redis.call('HSETNX', n, 'v:' .. member, '1') == 1 then
      redis.call('HINCRBY', k, 'friends_converted', '1')
    end
  end
  local orders = redis.call('HGETALL', key(f) .. ':orders')
  for i = 1, #orders, 2 do
    if redis.call('HSETNX', n, 'o:' .. orders[i], '1') == 1 then
      local amount, currency = string.match(orders[i + 1], '^(%d+)|(%u+)$')
      redis.call('HINCRBY', k, 'turnover:' .. currency, amount)
    end
  end
end

-- Who points at whom, so an erasure finds every contact that names the person: `f:<friend>` in
-- the referrer's links hash, `r:<referrer>` in the friend's.
local function link(r, f)
  if redis.call('HSETNX', key(r) .. ':n', 'f:' .. f, '1') == 1 then
    redis.call('HSETNX', key(f) .. ':n', 'r:' .. r, '1')
  end
end

local function befriend(f, r)
  local k = key(f)
  if redis.call('HSETNX', k, 'is_friend', '1') == 1 then redis.call('HSETNX', k, 'email', f) end
  if present(r) and r ~= f and not erased(r) then
    link(r, f)
    -- the earliest claim on a friend wins
    local cur = redis.call('HGET', k, 'referred_by@')
    if (not cur) or ts < cur then redis.call('HSET', k, 'referred_by', r, 'referred_by@', ts) end
  end
end

-- Forget a person: their state, their event log entries, every link to them (friends lose
-- `referred_by` and are marked dirty so each vendor's copy is cleared; referrers lose the
-- person's link and hash from their links hash but keep their counts), and the per-connector stores. What stays is
-- the keyed hash that refuses re-creation, and the address in each erase queue until the
-- vendor confirms the deletion (hub/core/sync.py).
local function erase(e)
  local k = key(e)
  local member = redis.sha1hex(e)
  local links = redis.call('HGETALL', k .. ':n')
  for i = 1, #links, 2 do
    local kind, other = string.sub(links[i], 1, 2), string.sub(links[i], 3)
    if kind == 'f:' then
      redis.call('HDEL', key(other) .. ':n', 'r:' .. e)
      if redis.call('HGET', key(other), 'referred_by') == e then
        redis.call('HSET', key(other), 'referred_by', '')
        mark(other)
      end
    elseif kind == 'r:' then
      redis.call('HDEL', key(other) .. ':n', 'f:' .. e, 'g:' .. member, 'v:' .. member)
    end
  end
  local ids = redis.call('ZRANGE', k .. ':log', 0, -1)
  for i = 1, #ids, 500 do
    redis.call('XDEL', P .. 'events', unpack(ids, i, math.min(i + 499, #ids)))
  end
  redis.call('DEL', k, k .. ':n', k .. ':orders', k .. ':log')
  redis.call('SET', P .. 'erased:' .. op.tags[e], ts)
  erased_tags[op.tags[e]] = true
  marks[e], latest[e] = nil, nil
  redis.call('HDEL', P .. 'ver', e)
  local now = redis.call('TIME')
  for _, c in ipairs(op.conns) do
    redis.call('ZREM', P .. 'dirty:' .. c, e)
    redis.call('HDEL', P .. 'last:' .. c, e)
    redis.call('HDEL', P .. 'suspect:' .. c, e)
    redis.call('ZADD', P .. 'erase:' .. c, 'NX', now[1], e)
  end
end

-- The event as the log keeps it: an erased party is left out (with its id, when the id itself
-- may carry the address), so no later event brings an erased address back into the log.
local function logged()
  local left = {}
  for _, role in ipairs(ROLES) do
    if present(op[role]) and erased(op[role]) then left[#left + 1] = role end
  end
  if #left == 0 then return op.id, op.log end
  local event = cjson.decode(op.log)
  for _, role in ipairs(left) do event[role] = nil end
  event.id = op.seen or op.id
  return event.id, cjson.encode(event)
end

-- Each party's log entry ids, so an erasure deletes exactly their entries. Ids the stream has
-- trimmed away (MAXLEN) are dropped from time to time (in one millisecond of entries in 16, so
-- the hot path pays one ZADD), keeping the index about as bounded as the stream.
local oldest
local function index_entry(id)
  local at = string.match(id, '^(%d+)')
  local ms = tonumber(at)
  for _, role in ipairs(ROLES) do
    local e = op[role]
    if present(e) and not erased(e) then
      local k = key(e) .. ':log'
      redis.call('ZADD', k, at, id)
      if ms % 16 == 0 and redis.call('ZCARD', k) > 64 then
        if not oldest then
          local first = redis.call('XRANGE', P .. 'events', '-', '+', 'COUNT', 1)[1]
          oldest = first and tonumber(string.match(first[1], '^(%d+)')) or ms
        end
        redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. oldest)
      end
    end
  end
end

local function apply_one()
if not redis.call('SET', P .. 'seen:' .. (op.seen or op.id), '1', 'NX', 'EX', number(op.ttl)) then
  return 0
end
local t = op.type
if t == 'contact.erased' then
  erase(op.contact)
elseif t == 'contact.updated' then
  if touch(op.contact) then
    redis.call('HSETNX', key(op.contact), 'email', op.contact)
    lww(op.contact, op.contact_set or {})
  end
else
  local r, f = op.referrer, op.friend
  if present(r) and touch(r) then
    as_referrer(r)
    lww(r, op.referrer_set or {})
  end
  if present(f) and touch(f) then
    befriend(f, r)
    lww(f, op.friend_set or {})
    if not present(r) then r = redis.call('HGET', key(f), 'referred_by') end
  end
  if t == 'referrer.enrolled' and present(r) and not erased(r) then
    keep_min(r, 'enrolled_at', ts)
  elseif t == 'referral.invited' and present(r) and not erased(r) then
    redis.call('HINCRBY', key(r), 'invites_sent', '1')
  elseif t == 'friend.registered' and present(f) and not erased(f) then
    keep_min(f, 'registered_at', ts)
    credit(r, f)
  elseif t == 'friend.converted' and present(f) and not erased(f) then
    keep_min(f, 'registered_at', ts)
    keep_min(f, 'converted_at', ts)
    local o = op.order
    if o ~= nil and o ~= null and redis.call('SET', P .. 'order:' .. o.id, '1', 'NX') then
      redis.call('HSET', key(f) .. ':orders', o.id, o.amount .. '|' .. o.currency)
      local cur = redis.call('HGET', key(f), 'first_order_at')
      if (not cur) or ts < cur then
        redis.call('HSET', key(f), 'first_order_at', ts, 'first_order_id', o.id,
          'first_order_total', o.amount, 'first_order_currency', o.currency)
      end
    end
    credit(r, f)
  elseif t == 'reward.granted' then
    local w = op.reward
    local holder = (w.recipient == 'referrer') and r or f
    if present(holder) and not erased(holder) then
      redis.call('HINCRBY', key(holder), 'rewards_earned', '1')
      if present(w.value) then redis.call('HINCRBY', key(holder), 'reward_value:' .. w.currency, w.value) end
      if present(w.code) then lww(holder, {reward_code = w.code}) end
    end
  end
end

local log_id, log = logged()
index_entry(redis.call('XADD', P .. 'events', 'MAXLEN', '~', number(op.maxlen), '*', 'id', log_id, 'type', t, 'event', log))
return 1
end

-- Bounds, checked for the whole batch before its first write, so the step cannot fail halfway
-- (Redis keeps whatever a script wrote before an error). Each argument the step relies on has
-- its shape, and each HINCRBY target must hold an integer that, with everything the batch could
-- add to it, stays under LIMIT: 2^63 less a margin wider than the rounding of Lua's doubles.
-- The sums are upper bounds: a referrer is charged with every order of every friend the batch
-- may credit to it, though an order already credited is never counted again.
local LIMIT = 9.2e18
local MAX_AMOUNT = 1e15  -- hub/core/schemas.py MAX_AMOUNT in ten-thousandths: exact as a double

local function amount_ok(v)
  return type(v) == 'string' and #v <= 16 and string.match(v, '^%d+$') ~= nil and tonumber(v) <= MAX_AMOUNT
end
local function code_ok(v) return type(v) == 'string' and string.match(v, '^%u+$') ~= nil end

local function check(ops)
  local stored, adds, orders, linked, claims = {}, {}, {}, {}, {}
  local refusal
  -- add n to contact e's field f; the first bound broken is the refusal, named after op i's field
  local function add(i, e, f, n, field, who)
    if refusal then return end
    stored[e] = stored[e] or {}
    if stored[e][f] == nil then stored[e][f] = redis.call('HGET', key(e), f) or '0' end
    adds[e] = adds[e] or {}
    adds[e][f] = (adds[e][f] or 0) + n
    if not string.match(stored[e][f], '^-?%d+$') or tonumber(stored[e][f]) < -LIMIT then
      refusal = {i, field, 'the ' .. who .. "'s stored " .. f .. ' is not an integer; nothing was applied'}
    elseif tonumber(stored[e][f]) + adds[e][f] > LIMIT then
      refusal = {i, field, 'the ' .. who .. "'s " .. f .. ' would pass the ledger\'s 64-bit limit; nothing was applied'}
    end
  end
  -- friend f's orders per currency: stored ones, then the batch's as they come
  local function orders_of(i, f)
    if not orders[f] then
      orders[f] = {}
      local rows = redis.call('HGETALL', key(f) .. ':orders')
      for j = 1, #rows, 2 do
        local amount, currency = string.match(rows[j + 1], '^(%d+)|(%u+)$')
        if not amount then
          refusal = refusal or {i, 'friend.email', "the friend's stored order " .. rows[j] .. ' is unreadable; nothing was applied'}
        else
          orders[f][currency] = (orders[f][currency] or 0) + tonumber(amount)
        end
      end
    end
    return orders[f]
  end
  -- everyone the step may take for this event's referrer
  local function referrers(f, r)
    if present(r) then return {r} end
    local out = {}
    if present(f) then
      local cur = redis.call('HGET', key(f), 'referred_by')
      if cur then out[#out + 1] = cur end
      for c, _ in pairs(claims[f] or {}) do out[#out + 1] = c end
    end
    return out
  end
  for i, o in ipairs(ops) do
    if type(o.id) ~= 'string' or o.id == '' or type(o.type) ~= 'string' or type(o.ts) ~= 'string'
        or type(o.ttl) ~= 'number' or o.ttl <= 0 or type(o.conns) ~= 'table' or type(o.maxlen) ~= 'number'
        or type(o.log) ~= 'string' then
      return {i, 'id', 'the ledger step got a malformed operation; nothing was applied'}
    end
    local f, r, t = o.friend, o.referrer, o.type
    local order, reward = o.order, o.reward
    if order ~= nil and order ~= null then
      if type(order.id) ~= 'string' or order.id == '' then return {i, 'order.id', 'must be a non-empty string'} end
      if not amount_ok(order.amount) then return {i, 'order.total', 'must be at most 100,000,000,000'} end
      if not code_ok(order.currency) then return {i, 'order.currency', 'must be an ISO 4217 code'} end
    else
      order = nil
    end
    if reward ~= nil and reward ~= null then
      if reward.recipient ~= 'referrer' and reward.recipient ~= 'friend' then
        return {i, 'reward.recipient', 'must be referrer or friend'}
      end
      if present(reward.value) and not amount_ok(reward.value) then
        return {i, 'reward.value', 'must be at most 100,000,000,000'}
      end
      if present(reward.value) and not code_ok(reward.currency) then
        return {i, 'reward.currency', 'must be an ISO 4217 code'}
      end
    else
      reward = nil
    end
    local candidates = referrers(f, r)
    if present(f) and present(r) and r ~= f then
      claims[f] = claims[f] or {}
      claims[f][r] = true
    end
    local by = present(r) and 'referrer.email' or 'friend.email'
    if t == 'referral.invited' then
      for _, c in ipairs(candidates) do add(i, c, 'invites_sent', 1, by, 'referrer') end
    elseif (t == 'friend.registered' or t == 'friend.converted') and present(f) then
      local mine = orders_of(i, f)
      if t == 'friend.converted' and order then
        mine[order.currency] = (mine[order.currency] or 0) + tonumber(order.amount)
        for c, _ in pairs(linked[f] or {}) do
          add(i, c, 'turnover:' .. order.currency, tonumber(order.amount), 'order.total', 'referrer')
        end
      end
      for _, c in ipairs(candidates) do
        if c ~= f then
          add(i, c, 'friends_registered', 1, by, 'referrer')
          add(i, c, 'friends_converted', 1, by, 'referrer')
          linked[f] = linked[f] or {}
          if not linked[f][c] then
            linked[f][c] = true
            for currency, amount in pairs(mine) do
              add(i, c, 'turnover:' .. currency, amount, order and 'order.total' or by, 'referrer')
            end
          end
        end
      end
    elseif t == 'reward.granted' and reward then
      local holders = (reward.recipient == 'referrer') and candidates or {f}
      for _, h in ipairs(holders) do
        if present(h) then
          add(i, h, 'rewards_earned', 1, 'reward.recipient', reward.recipient)
          if present(reward.value) then
            add(i, h, 'reward_value:' .. reward.currency, tonumber(reward.value), 'reward.value', reward.recipient)
          end
        end
      end
    end
    if refusal then return refusal end
  end
  return nil
end

local ops = cjson.decode(ARGV[1])
local meta = ARGV[3] and cjson.decode(ARGV[3]) or {}
local shared, logs = meta.op or {}, {}
local SHARED = {'conns', 'wins', 'cap', 'ttl', 'maxlen'}
if ARGV[4] then
  for line in string.gmatch(ARGV[4], '[^\n]+') do logs[#logs + 1] = line end
end
for i, o in ipairs(ops) do
  if type(o) == 'table' then
    for _, f in ipairs(SHARED) do
      if o[f] == nil then o[f] = shared[f] end
    end
    if o.log == nil then o.log = logs[i] end
    if o.metric == nil and meta.source then o.metric = tostring(o.type) .. meta.source end
  end
end
local refused = check(ops)
if refused then return {{}, {}, refused} end

-- Call `cmd` on `key` with `args` (a list), at most 1000 of them a call.
local function in_chunks(cmd, k, args, step)
  for i = 1, #args, step do
    redis.call(cmd, k, unpack(args, i, math.min(i + step - 1, #args)))
  end
end

-- Which parties of the batch are erased: every tag in one MGET (see erased).
local tags, seen_tag = {}, {}
for _, o in ipairs(ops) do
  for _, t in pairs(o.tags or {}) do
    if not seen_tag[t] then
      seen_tag[t] = true
      tags[#tags + 1] = P .. 'erased:' .. t
    end
  end
end
for i = 1, #tags, 1000 do
  local found = redis.call('MGET', unpack(tags, i, math.min(i + 999, #tags)))
  for j, v in ipairs(found) do
    if v then erased_tags[string.sub(tags[i + j - 1], #P + 8)] = true end
  end
end

local results = {}
local counts = {}
local any = false
for i, next_op in ipairs(ops) do
  op, ts = next_op, next_op.ts
  results[i] = apply_one()
  any = any or results[i] == 1
  if op.metric then
    local f = op.metric .. (results[i] == 1 and 'accepted' or 'duplicate')
    counts[f] = (counts[f] or 0) + 1
  end
end

-- Settle what the events touched, once per contact: last_activity_at (the latest occurred_at
-- wins, whatever the arrival order), the version (bumped, so no flush that read the contact
-- earlier can clear its mark) and the dirty marks. A mark's score is when the contact is due:
-- `win` seconds after its LAST touch (so a burst of events for one person becomes one vendor
-- write), but never later than `cap` seconds after its burst began (`:since`, so a busy contact
-- is never deferred forever). ZADD GT only ever moves a due time later, and adds a contact that
-- is not dirty yet. One ZADD per connector takes every contact of the batch.
local emails = {}
for e, _ in pairs(marks) do emails[#emails + 1] = e end
if #emails > 0 then
  local clock = redis.call('TIME')
  local now = clock[1] + clock[2] / 1000000
  local versions = redis.call('HMGET', P .. 'ver', unpack(emails))
  local bumped, dirty, order = {}, {}, {}
  for i, e in ipairs(emails) do
    bumped[#bumped + 1] = e
    bumped[#bumped + 1] = (tonumber(versions[i]) or 0) + 1
    local o, k = marks[e], key(e)
    local cur = redis.call('HMGET', k, 'last_activity_at', ':since')
    local set = {}
    if latest[e] and ((not cur[1]) or latest[e] > cur[1]) then
      set[#set + 1] = 'last_activity_at'
      set[#set + 1] = latest[e]
    end
    local since, cap = tonumber(cur[2]), o.cap or 0
    if (not since) or now - since > cap then
      since = now
      set[#set + 1] = ':since'
      set[#set + 1] = number(now)
    end
    if #set > 0 then redis.call('HSET', k, unpack(set)) end
    for j, c in ipairs(o.conns) do
      local win = (o.wins and o.wins[j]) or 0
      local mode = win <= 0 and 'NX' or 'GT'
      local name = c .. ' ' .. mode
      if not dirty[name] then
        dirty[name] = {}
        order[#order + 1] = {c, mode, name}
      end
      local args = dirty[name]
      args[#args + 1] = number(win <= 0 and now or math.min(now + win, since + cap))
      args[#args + 1] = e
    end
  end
  in_chunks('HSET', P .. 'ver', bumped, 1000)
  for _, each in ipairs(order) do
    local c, mode, name = each[1], each[2], each[3]
    local args = dirty[name]
    for i = 1, #args, 1000 do
      redis.call('ZADD', P .. 'dirty:' .. c, mode, unpack(args, i, math.min(i + 999, #args)))
    end
  end
end
-- ARGV[3] (optional): where to count events for /metrics (`source`: the labels after the type),
-- and each connector's flush flag. Setting a flag here saves the request a round trip; the
-- caller queues a flush job for every flag this call set (the flag was absent: no flush is
-- queued or running for that connector).
local fresh = {}
if ARGV[3] then
  for f, n in pairs(counts) do redis.call('HINCRBY', meta.metrics, f, n) end
  if any then
    for i, flag in ipairs(meta.flags) do
      if redis.call('SET', flag, '1', 'NX', 'EX', meta.ttl) then fresh[#fresh + 1] = i end
    end
  end
end
return {results, fresh}
