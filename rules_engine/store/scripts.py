"""The Lua scripts of the Redis store: each runs atomically, so one script is one consistent step.

Every script gets the case's three keys first (facts, flags, decision index) so it can refresh their
retention, and the shared decision log fourth; on a Redis Cluster, where the log lies in another
slot, the fourth key is the outbox of the case's slot, which the client then forwards to the log
(redis.py says why). Scripts that append return the entry's id there. The flag lifecycle here mirrors lifecycle.py; the
behaviour tests run both stores through the same cases to keep them in step.
"""

from __future__ import annotations

from rules_engine.case.equality import CHARACTERISTICS, NOT_RECORDED
from rules_engine.policy.compiled import Severity
from rules_engine.store.codec import REVISION_FIELD

# ARGV[1..4] of every script: retention in milliseconds, log MAXLEN ('' none), log max age ms ('' none),
# per-case index MAXLEN.
_PRELUDE = """
local ttl = tonumber(ARGV[1])
local function refresh()
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local function append(fields)
  local args = {KEYS[4]}
  if ARGV[2] ~= '' then
    args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[2]
  end
  args[#args + 1] = '*'
  for _, v in ipairs(fields) do args[#args + 1] = v end
  local id = redis.call('XADD', unpack(args))
  if ARGV[3] ~= '' then
    local t = redis.call('TIME')
    local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
    -- Exact, not '~': approximate trimming only drops whole stream nodes (100 entries), so a quiet
    -- log would keep old decisions past their age. Each append removes only the few now too old.
    redis.call('XTRIM', KEYS[4], 'MINID', string.format('%.0f', cutoff))
  end
  args = {KEYS[3], 'MAXLEN', '~', ARGV[4], '*'}
  for _, v in ipairs(fields) do args[#args + 1] = v end
  redis.call('XADD', unpack(args))
  return id
end
"""

# ARGV[5]: how many field/value pairs follow to set; the rest are fields to delete.
# The reply is the facts hash without the fields just set, which the caller sent and so already
# has: a caller resending a whole case (the usual way) gets back only the revision.
MERGE = (
    _PRELUDE
    + f"local REVISION = '{REVISION_FIELD}'\n"
    + """
local last = 5 + 2 * tonumber(ARGV[5])
-- Only the fields whose text differs are written. The revision counts merges that changed
-- something: resending a fact must not make a concurrent evaluation of the same facts stale
-- (see RECORD). Batches of 1000: unpack() of thousands of values would overflow Lua's C stack.
local sent, changes, changed = {}, {}, false
for first = 6, last, 2000 do
  local names = {}
  for i = first, math.min(first + 1998, last - 1), 2 do names[#names + 1] = ARGV[i] end
  local current = redis.call('HMGET', KEYS[1], unpack(names))
  for j = 1, #names do
    local value = ARGV[first + 2 * j - 1]
    sent[names[j]] = true
    if current[j] ~= value then
      changes[#changes + 1] = names[j]; changes[#changes + 1] = value
    end
  end
end
for first = 1, #changes, 1000 do
  redis.call('HSET', KEYS[1], unpack(changes, first, math.min(first + 999, #changes)))
  changed = true
end
for first = last + 1, #ARGV, 1000 do
  if redis.call('HDEL', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV))) > 0 then changed = true end
end
if changed then redis.call('HINCRBY', KEYS[1], REVISION, 1) end
refresh()
local reply = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if not sent[flat[i]] then
    reply[#reply + 1] = flat[i]; reply[#reply + 1] = flat[i + 1]
  end
end
return reply
"""
)

_SEVERITY = "{" + ", ".join(f"[{int(s)}] = '{s.name}'" for s in Severity) + "}"

# The flag lifecycle of one evaluation, computed before anything is written: lifecycle(ruleset, now,
# today, cap, sightings JSON) returns the raised and resolved records' JSON, the flags-hash
# field/value pairs to set, the decision's flags JSON, and the rule ids raised and resolved (for the
# equality counts). A bad argument (a severity that is not a
# level) raises here, while nothing is written yet: Redis does not roll back a failed script.
_LIFECYCLE = (
    f"local SEVERITY = {_SEVERITY}\n"
    + """
local function lifecycle(ruleset, now, today, cap, sightings)
  local stored = {}
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do
    local rec = cjson.decode(flat[i + 1])
    if rec.ruleset == ruleset then stored[rec.rule_id] = rec end
  end
  local raised_out, resolved_out, writes, parts, held, raised_ids = {}, {}, {}, {}, {}, {}
  local function save(out, rec)
    local text = cjson.encode(rec)
    writes[#writes + 1] = ruleset .. '/' .. rec.rule_id; writes[#writes + 1] = text
    out[#out + 1] = text
    parts[#parts + 1] = '{"rule_id":' .. cjson.encode(rec.rule_id) .. ',"state":"' .. rec.state
      .. '","severity":"' .. SEVERITY[rec.severity] .. '"}'
  end
  for _, s in ipairs(cjson.decode(sightings)) do
    local rule_id, sev = s[1], s[2]
    if type(rule_id) ~= 'string' or SEVERITY[sev] == nil then error('bad sighting') end
    held[rule_id] = true
    raised_ids[#raised_ids + 1] = rule_id
    local rec = stored[rule_id]
    if rec == nil or rec.state == 'RESOLVED' then
      local raised = {}
      if rec ~= nil and type(rec.raised) == 'table' then raised = rec.raised end
      raised[#raised + 1] = now
      while #raised > cap do table.remove(raised, 1) end
      rec = {ruleset = ruleset, rule_id = rule_id, state = 'NEW', severity = sev,
             first_raised = now, last_seen = now, raised = raised}
    else
      local ack = rec.ack
      if ack == nil then
        rec.state = 'ONGOING'
      elseif sev > ack.severity or (ack.snooze_until ~= nil and today >= ack.snooze_until) then
        -- The situation worsened or the snooze ran out: back in front of the practitioner.
        rec.state = 'NEW'; rec.ack = nil
      elseif ack.snooze_until == nil then
        rec.state = 'ACKNOWLEDGED'
      else
        rec.state = 'SNOOZED'
      end
      rec.severity = sev; rec.last_seen = now; rec.resolved_at = nil
    end
    save(raised_out, rec)
  end
  local gone = {}
  for rule_id, rec in pairs(stored) do
    if not held[rule_id] and rec.state ~= 'RESOLVED' then gone[#gone + 1] = rule_id end
  end
  table.sort(gone)
  for _, rule_id in ipairs(gone) do
    local rec = stored[rule_id]
    rec.state = 'RESOLVED'; rec.resolved_at = now; rec.ack = nil
    save(resolved_out, rec)
  end
  return raised_out, resolved_out, writes, '[' .. table.concat(parts, ',') .. ']', raised_ids, gone
end
local function hset_all(key, pairs)
  for first = 1, #pairs, 1000 do
    redis.call('HSET', key, unpack(pairs, first, math.min(first + 999, #pairs)))
  end
end
-- Streams are checked before the first write: a wrong type would otherwise fail the XADD after
-- the hashes were written.
local function check_streams(last)
  for i = 3, last do
    local kind = redis.call('TYPE', KEYS[i])['ok']
    if kind ~= 'none' and kind ~= 'stream' then error('WRONGTYPE ' .. KEYS[i] .. ' is not a stream') end
  end
end
"""
)

# Equality monitoring, mirroring store/equality.py (which says what is counted and why). A case's
# marker per ruleset is a field of its `{case}:equality` hash: {"v": version, "g": [4 groups],
# "c": ["<rule>/<outcome>", ...]}; the counters are fields "<ruleset>/<version>/<rule>/
# <characteristic>/<group>/<outcome>" of a counts hash (the slot's own on a cluster). Each function
# returns the ANY_FLAG outcomes newly counted.
_EQUALITY = (
    f"local EQ_CHARACTERISTICS = {{{', '.join(repr(c) for c in CHARACTERISTICS)}}}\n"
    + f"local EQ_NOT_RECORDED = '{NOT_RECORDED}'\n"
    + """
local function eq_read(marker_key, ruleset)
  local text = redis.call('HGET', marker_key, ruleset)
  if not text then return nil end
  local m = cjson.decode(text)
  local set = {}
  for _, p in ipairs(m.c) do set[p] = true end
  m.c = set
  return m
end
local function eq_write(marker_key, ruleset, m)
  local list = {}
  for p in pairs(m.c) do list[#list + 1] = p end
  table.sort(list)
  for i, p in ipairs(list) do list[i] = cjson.encode(p) end
  -- By hand: cjson writes an empty list as {}.
  local text = '{"v":' .. cjson.encode(m.v) .. ',"g":' .. cjson.encode(m.g)
    .. ',"c":[' .. table.concat(list, ',') .. ']}'
  redis.call('HSET', marker_key, ruleset, text)
end
local function eq_add(counts_key, ruleset, version, rule, i, group, outcome, delta)
  local field = table.concat({ruleset, version, rule, EQ_CHARACTERISTICS[i], group, outcome}, '/')
  if redis.call('HINCRBY', counts_key, field, delta) == 0 then redis.call('HDEL', counts_key, field) end
end
local function eq_count(counts_key, ruleset, m, rule, outcome, new)
  m.c[rule .. '/' .. outcome] = true
  for i = 1, 4 do eq_add(counts_key, ruleset, m.v, rule, i, m.g[i], outcome, 1) end
  if rule == '*' then new[#new + 1] = outcome end
end
local function eq_evaluated(marker_key, counts_key, ruleset, version, given, flagged, resolved)
  local m = eq_read(marker_key, ruleset)
  local held = {EQ_NOT_RECORDED, EQ_NOT_RECORDED, EQ_NOT_RECORDED, EQ_NOT_RECORDED}
  if m ~= nil then held = m.g end
  local now = {}
  for i = 1, 4 do
    if given[i] ~= EQ_NOT_RECORDED then now[i] = given[i] else now[i] = held[i] end
  end
  local changed = m == nil or m.v ~= version
  if changed then
    m = {v = version, g = now, c = {}}
  else
    for i = 1, 4 do
      if held[i] ~= now[i] then
        changed = true
        for p in pairs(m.c) do
          local rule, outcome = string.match(p, '^(.*)/([^/]*)$')
          eq_add(counts_key, ruleset, version, rule, i, held[i], outcome, -1)
          eq_add(counts_key, ruleset, version, rule, i, now[i], outcome, 1)
        end
      end
    end
    m.g = now
  end
  local new = {}
  local function once(rule, outcome)
    if not m.c[rule .. '/' .. outcome] then eq_count(counts_key, ruleset, m, rule, outcome, new); changed = true end
  end
  once('*', 'evaluated')
  if #flagged > 0 then
    once('*', 'flagged')
    for _, rule in ipairs(flagged) do once(rule, 'flagged') end
  end
  local ended = {}
  for _, rule in ipairs(resolved) do
    if m.c[rule .. '/flagged'] then ended[#ended + 1] = rule end
  end
  if #ended > 0 then
    once('*', 'resolved')
    for _, rule in ipairs(ended) do once(rule, 'resolved') end
  end
  if changed then eq_write(marker_key, ruleset, m) end
  redis.call('PEXPIRE', marker_key, ttl)
  return new
end
local function eq_dismissed(marker_key, counts_key, ruleset, rule, outcome)
  local m = eq_read(marker_key, ruleset)
  local new = {}
  if m == nil or not m.c[rule .. '/flagged'] then return new end
  local changed = false
  for _, r in ipairs({rule, '*'}) do
    if not m.c[r .. '/acknowledged'] and not m.c[r .. '/snoozed'] then
      eq_count(counts_key, ruleset, m, r, outcome, new); changed = true
    end
  end
  if changed then eq_write(marker_key, ruleset, m) end
  redis.call('PEXPIRE', marker_key, ttl)
  return new
end
-- Before the first write, as check_streams: a wrong type would fail the count after the rest was written.
local function eq_check(first)
  for i = first, first + 1 do
    local kind = redis.call('TYPE', KEYS[i])['ok']
    if kind ~= 'none' and kind ~= 'hash' then error('WRONGTYPE ' .. KEYS[i] .. ' is not a hash') end
  end
end
local function eq_after_evaluation(spec, ruleset, flagged, resolved)
  if spec == '' then return {} end
  local e = cjson.decode(spec)
  return eq_evaluated(KEYS[#KEYS - 1], KEYS[#KEYS], ruleset, e.v, e.g, flagged, resolved)
end
"""
)

# ARGV[5] ruleset, [6] now (ISO), [7] today (ISO date), [8] episodes kept, [9] sightings JSON
# [[rule_id, severity], ...], [10] '1' to append a decision, [11] the facts revision evaluated ('' any),
# [12] equality monitoring: '' none, else {"v": version, "g": [groups]} (the case's equality marker
# and the counts hash are then the last two keys), [13..] the decision's fields, flags excepted.
# When the facts changed since that revision nothing is written and the reply is {'changed', <facts
# hash>}: an evaluation of an older view must not resolve flags that the newer facts hold, so the
# caller evaluates the current facts and records again.
RECORD = (
    _PRELUDE
    + _LIFECYCLE
    + _EQUALITY
    + f"local REVISION = '{REVISION_FIELD}'\n"
    + """
if ARGV[11] ~= '' and (redis.call('HGET', KEYS[1], REVISION) or '0') ~= ARGV[11] then
  return {'changed', redis.call('HGETALL', KEYS[1])}
end
local raised_out, resolved_out, writes, flags, raised_ids, gone =
  lifecycle(ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9])
if ARGV[10] == '1' then check_streams(4) else check_streams(3) end
if ARGV[12] ~= '' then eq_check(#KEYS - 1) end
hset_all(KEYS[2], writes)
local logged = false
if ARGV[10] == '1' then
  local fields = {}
  for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
  fields[#fields + 1] = 'flags'
  fields[#fields + 1] = flags
  logged = append(fields)
end
local counted = eq_after_evaluation(ARGV[12], ARGV[5], raised_ids, gone)
refresh()
return {raised_out, resolved_out, logged, counted}
"""
)

# The read half of a stored-history Evaluate; writes nothing (not even retention). ARGV[1]: how
# many field/value pairs follow (the facts the request sends); the rest are fields withdrawn.
# Reply: {revision, <stored fields not sent, flat>, <1-based positions of the sent pairs whose
# text differs from the stored one>}. The caller merges in memory, evaluates, and sends only the
# differing pairs to COMMIT, which writes them if the revision still holds.
READ = (
    f"local REVISION = '{REVISION_FIELD}'\n"
    + """
local last = 1 + 2 * tonumber(ARGV[1])
local sent, changed = {}, {}
for first = 2, last, 2000 do
  local names = {}
  for i = first, math.min(first + 1998, last - 1), 2 do names[#names + 1] = ARGV[i] end
  local current = redis.call('HMGET', KEYS[1], unpack(names))
  for j = 1, #names do
    sent[names[j]] = true
    if current[j] ~= ARGV[first + 2 * j - 1] then changed[#changed + 1] = (first - 2) / 2 + j end
  end
end
local rest = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if not sent[flat[i]] then
    rest[#rest + 1] = flat[i]; rest[#rest + 1] = flat[i + 1]
  end
end
return {redis.call('HGET', KEYS[1], REVISION) or '0', rest, changed}
"""
)

# The write half: facts, flag lifecycle and decision in one step, or nothing. ARGV[5] ruleset,
# [6] now, [7] today, [8] episodes kept, [9] sightings JSON, [10] the revision READ saw, [11]
# equality monitoring as RECORD's ARGV[12], [12] n, [13 .. 12+2n] field/value pairs to set,
# [13+2n] m, then m fields to delete, then the decision's fields (flags excepted). When the
# revision moved, nothing is written and the reply is {'changed'}.
COMMIT = (
    _PRELUDE
    + _LIFECYCLE
    + _EQUALITY
    + f"local REVISION = '{REVISION_FIELD}'\n"
    + """
if (redis.call('HGET', KEYS[1], REVISION) or '0') ~= ARGV[10] then return {'changed'} end
local raised_out, resolved_out, writes, flags, raised_ids, gone =
  lifecycle(ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9])
check_streams(4)
if ARGV[11] ~= '' then eq_check(#KEYS - 1) end
local sets = 13 + 2 * tonumber(ARGV[12])
local deletes = sets + 1 + tonumber(ARGV[sets])
local changed = sets > 13
for first = 13, sets - 1, 2000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + 1999, sets - 1)))
end
for first = sets + 1, deletes - 1, 1000 do
  if redis.call('HDEL', KEYS[1], unpack(ARGV, first, math.min(first + 999, deletes - 1))) > 0 then changed = true end
end
if changed then redis.call('HINCRBY', KEYS[1], REVISION, 1) end
hset_all(KEYS[2], writes)
local fields = {}
for i = deletes, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'flags'
fields[#fields + 1] = flags
local logged = append(fields)
local counted = eq_after_evaluation(ARGV[11], ARGV[5], raised_ids, gone)
refresh()
return {raised_out, resolved_out, logged, counted}
"""
)

# ARGV[5..]: the decision's field/value pairs.
APPEND = (
    _PRELUDE
    + """
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local logged = append(fields)
refresh()
return logged
"""
)

# ARGV[5] flags-hash field, [6] practitioner id, [7] reason code, [8] now (ISO), [9] snooze date or '',
# [10] ruleset, [11] rule id. KEYS[4] the case's equality marker, KEYS[5] the counts hash. Reply:
# {the flag record's JSON, the ANY_FLAG outcomes newly counted}, or false when the flag is not raised.
ACKNOWLEDGE = (
    _PRELUDE
    + _EQUALITY
    + """
local text = redis.call('HGET', KEYS[2], ARGV[5])
if not text then return false end
local rec = cjson.decode(text)
if rec.state == 'RESOLVED' then return false end
eq_check(4)
rec.ack = {practitioner_id = ARGV[6], reason_code = ARGV[7], at = ARGV[8], severity = rec.severity}
if ARGV[9] == '' then
  rec.state = 'ACKNOWLEDGED'
else
  rec.ack.snooze_until = ARGV[9]; rec.state = 'SNOOZED'
end
text = cjson.encode(rec)
redis.call('HSET', KEYS[2], ARGV[5], text)
local outcome = 'acknowledged'
if ARGV[9] ~= '' then outcome = 'snoozed' end
local counted = eq_dismissed(KEYS[4], KEYS[5], ARGV[10], ARGV[11], outcome)
refresh()
return {text, counted}
"""
)

# Forget a case: its facts, flag lifecycle (acknowledgements included), equality marker (KEYS[4]; the
# counts, which hold no case, keep it) and decision index. The
# shared decision log keeps its entries (ids, codes and digests only). Reply: {facts, flags,
# decisions} removed, the revision field not counted. ARGV[1]: retention in milliseconds.
# What is left is a tombstone: the facts hash holding only the revision, one past the deleted
# case's, for the retention period. A case written again continues from it, so a revision never
# repeats for a case id, and an evaluation that read the case before the delete cannot commit its
# view onto the recreated case (COMMIT and RECORD compare revisions). Nothing stored, nothing done.
DELETE = (
    f"local REVISION = '{REVISION_FIELD}'\n"
    + """
local revision = tonumber(redis.call('HGET', KEYS[1], REVISION) or '0')
local facts = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], REVISION)
local flags = redis.call('HLEN', KEYS[2])
local decisions = 0
if redis.call('EXISTS', KEYS[3]) == 1 then decisions = redis.call('XLEN', KEYS[3]) end
redis.call('DEL', KEYS[4])
if facts + flags + decisions > 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], REVISION, revision + 1)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return {facts, flags, decisions}
"""
)
