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
# marker per ruleset is a field of its `{case}:equality` hash, tab-separated text: version, the four
# groups, the rules its last counted evaluation raised (comma-separated) and its signature, the
# pairs counted between bars ("|*/evaluated|*/flagged|r1/flagged|"). The counters are fields
# "<ruleset>/<version>/<rule>/<characteristic>/<group>/<outcome>" of a counts hash (the slot's own on
# a cluster). Each event is planned before the script's first write (reading the marker fails there
# on a key of another type, and the counts key is checked only when there is something to count)
# and applied after; the usual re-evaluation (same version, groups and flags, none resolved) is one
# HGET, one comparison and one PEXPIRE. Applying returns the ANY_FLAG outcomes newly counted.
_EQUALITY = (
    f"local EQ_CHARACTERISTICS = {{{', '.join(repr(c) for c in CHARACTERISTICS)}}}\n"
    + f"local EQ_NR = '{NOT_RECORDED}'\n"
    + """
local function eq_split(text, sep)
  local out, start = {}, 1
  while true do
    local i = string.find(text, sep, start, true)
    if not i then out[#out + 1] = string.sub(text, start); return out end
    out[#out + 1] = string.sub(text, start, i - 1)
    start = i + 1
  end
end
local function eq_has(signature, pair) return string.find(signature, '|' .. pair .. '|', 1, true) ~= nil end
local function eq_check_counts(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= 'hash' then error('WRONGTYPE ' .. key .. ' is not a hash') end
end
local function eq_add(counts_key, ruleset, version, pair, i, group, delta)
  local rule, outcome = string.match(pair, '^(.*)/([^/]*)$')
  local field = table.concat({ruleset, version, rule, EQ_CHARACTERISTICS[i], group, outcome}, '/')
  if redis.call('HINCRBY', counts_key, field, delta) == 0 then redis.call('HDEL', counts_key, field) end
end
local function eq_write(plan, ruleset)
  local m = {plan.version, plan.now[1], plan.now[2], plan.now[3], plan.now[4], plan.raised, plan.after}
  redis.call('HSET', plan.mk, ruleset, table.concat(m, '\t'))
end
-- spec: '' (count nothing) or "version<TAB>4 groups"; flagged and resolved: lifecycle's rule ids.
local function eq_plan_evaluation(spec, ruleset, flagged, resolved)
  if spec == '' then return nil end
  local mk, ck = KEYS[#KEYS - 1], KEYS[#KEYS]
  local given = eq_split(spec, '\t')
  local version, raised = given[1], table.concat(flagged, ',')
  local text = redis.call('HGET', mk, ruleset)
  if text and #resolved == 0 and string.sub(text, 1, #spec + #raised + 2) == spec .. '\t' .. raised .. '\t' then
    return {mk = mk, quiet = true}
  end
  local held, sig, same = {EQ_NR, EQ_NR, EQ_NR, EQ_NR}, '|', false
  if text then
    local f = eq_split(text, '\t')
    held = {f[2], f[3], f[4], f[5]}
    if f[1] == version then sig, same = f[7], true end
  end
  local now, moved = {}, false
  for i = 1, 4 do
    if given[i + 1] ~= EQ_NR then now[i] = given[i + 1] else now[i] = held[i] end
    if same and now[i] ~= held[i] then moved = true end
  end
  local adds, seen = {}, {}
  local function want(pair)
    if not seen[pair] and not eq_has(sig, pair) then seen[pair] = true; adds[#adds + 1] = pair end
  end
  want('*/evaluated')
  if #flagged > 0 then
    want('*/flagged')
    for _, rule in ipairs(flagged) do want(rule .. '/flagged') end
  end
  local ended = {}
  for _, rule in ipairs(resolved) do
    if eq_has(sig, rule .. '/flagged') then ended[#ended + 1] = rule end
  end
  if #ended > 0 then
    want('*/resolved')
    for _, rule in ipairs(ended) do want(rule .. '/resolved') end
  end
  if #adds > 0 or moved then eq_check_counts(ck) end
  local after = sig
  if #adds > 0 then after = sig .. table.concat(adds, '|') .. '|' end
  return {mk = mk, ck = ck, version = version, held = held, now = now, sig = sig, after = after,
          adds = adds, moved = moved, raised = raised}
end
local function eq_apply(plan, ruleset)
  if plan == nil then return {} end
  if not plan.quiet then
    if plan.moved then
      for _, pair in ipairs(eq_split(string.sub(plan.sig, 2, -2), '|')) do
        for i = 1, 4 do
          if plan.held[i] ~= plan.now[i] then
            eq_add(plan.ck, ruleset, plan.version, pair, i, plan.held[i], -1)
            eq_add(plan.ck, ruleset, plan.version, pair, i, plan.now[i], 1)
          end
        end
      end
    end
    local new = {}
    for _, pair in ipairs(plan.adds) do
      for i = 1, 4 do eq_add(plan.ck, ruleset, plan.version, pair, i, plan.now[i], 1) end
      if string.sub(pair, 1, 2) == '*/' then new[#new + 1] = string.sub(pair, 3) end
    end
    eq_write(plan, ruleset)
    redis.call('PEXPIRE', plan.mk, ttl)
    return new
  end
  redis.call('PEXPIRE', plan.mk, ttl)
  return {}
end
-- A dismissal (ACKNOWLEDGE: KEYS[4] the marker, KEYS[5] the counts): the case's first of the flag.
local function eq_plan_dismissal(ruleset, rule, outcome)
  local text = redis.call('HGET', KEYS[4], ruleset)
  if not text then return nil end
  local f = eq_split(text, '\t')
  if not eq_has(f[7], rule .. '/flagged') then return nil end
  local adds = {}
  for _, r in ipairs({rule, '*'}) do
    if not eq_has(f[7], r .. '/acknowledged') and not eq_has(f[7], r .. '/snoozed') then
      adds[#adds + 1] = r .. '/' .. outcome
    end
  end
  if #adds == 0 then return nil end
  eq_check_counts(KEYS[5])
  return {mk = KEYS[4], ck = KEYS[5], version = f[1], held = {f[2], f[3], f[4], f[5]},
          now = {f[2], f[3], f[4], f[5]}, sig = f[7], after = f[7] .. table.concat(adds, '|') .. '|',
          adds = adds, moved = false, raised = f[6]}
end
"""
)

# ARGV[5] ruleset, [6] now (ISO), [7] today (ISO date), [8] episodes kept, [9] sightings JSON
# [[rule_id, severity], ...], [10] '1' to append a decision, [11] the facts revision evaluated ('' any),
# [12] equality monitoring: '' none, else the version and the four groups, tab-separated (the case's
# equality marker and the counts hash are then the last two keys), [13..] the decision's fields,
# flags excepted.
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
local counting = eq_plan_evaluation(ARGV[12], ARGV[5], raised_ids, gone)
hset_all(KEYS[2], writes)
local logged = false
if ARGV[10] == '1' then
  local fields = {}
  for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
  fields[#fields + 1] = 'flags'
  fields[#fields + 1] = flags
  logged = append(fields)
end
local counted = eq_apply(counting, ARGV[5])
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
local counting = eq_plan_evaluation(ARGV[11], ARGV[5], raised_ids, gone)
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
local counted = eq_apply(counting, ARGV[5])
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
local outcome = 'acknowledged'
if ARGV[9] ~= '' then outcome = 'snoozed' end
local counting = eq_plan_dismissal(ARGV[10], ARGV[11], outcome)
rec.ack = {practitioner_id = ARGV[6], reason_code = ARGV[7], at = ARGV[8], severity = rec.severity}
if ARGV[9] == '' then
  rec.state = 'ACKNOWLEDGED'
else
  rec.ack.snooze_until = ARGV[9]; rec.state = 'SNOOZED'
end
text = cjson.encode(rec)
redis.call('HSET', KEYS[2], ARGV[5], text)
local counted = eq_apply(counting, ARGV[10])
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
