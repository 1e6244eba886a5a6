"""The ledger's atomic operations, each written once in Lua (Redis) and once in Python over
`Data` (the in-process store). The contract tests in tests/budget run both against the same
expectations. Amounts are integer nano-USD; every key of one call shares the team's hash tag.

admit   sweep expired holds; rate limits (requests and tokens per minute) + a snapshot of the
        team's budgets
reserve sweep expired holds; check every budget; hold the worst case against all (once per id)
settle  replace a reservation by the actual cost; write the spend ledger; exactly once per id
apply   add field amounts to one hash
sweep   give back expired holds (read paths that do not run admit, e.g. the admin API)

Holds (problem: a crashed replica's hold must not inflate a budget for its whole window): each
hold is a field of the team's `resv` hash, "expiry amount budget_key...", and is counted in each
budget's `reserved`. Every admit and reserve (so every read of a team's standing on the request
path) sweeps the holds whose expiry has passed; the field `_next` keeps the earliest expiry, so a
sweep reads the hash only when something may have expired. The `resv` hash lives at least as long
as every budget key it refers to (no expiry at all when one is a lifetime budget), so the index
can never expire before the counters it must correct.

Settles are idempotent by reservation id on every path: a settle (or release) records its id in
the `done` set of the reservation's minute, and a second settle with that id changes nothing. A
settle whose reply was lost (a timeout after Redis ran it) is replayed later from the guard's
journal and is then a no-op. A `strict` replay (one older than the done set's lifetime) charges
only if its hold is still recorded, so it can never charge twice.
"""

from collections.abc import Sequence

from gateway.store.base import Data, Script, ScriptArg

_SPLIT = """
local function split(s)
  local t = {}
  for w in string.gmatch(s, '%S+') do t[#t + 1] = w end
  return t
end
"""

# sweep(resv, now): give back every hold whose expiry has passed (see the module docstring).
_SWEEP = (
    _SPLIT
    + """
local function undo(p)
  for j = 3, #p do
    if redis.call('EXISTS', p[j]) == 1 then
      redis.call('HINCRBY', p[j], 'reserved', '-' .. p[2])
    end
  end
end
local function sweep(resv, now)
  local nxt = redis.call('HGET', resv, '_next')
  if nxt and tonumber(nxt) > now then return end
  if not nxt and redis.call('EXISTS', resv) == 0 then return end
  local all = redis.call('HGETALL', resv)
  local low = -1
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 1) ~= '_' then
      local p = split(all[i + 1])
      local exp = tonumber(p[1])
      if exp <= now then
        undo(p)
        redis.call('HDEL', resv, all[i])
      elseif low < 0 or exp < low then
        low = exp
      end
    elseif all[i] ~= '_next' then
      redis.call('HDEL', resv, all[i])
    end
  end
  if low < 0 then redis.call('HDEL', resv, '_next') else redis.call('HSET', resv, '_next', low) end
end
"""
)


def _int(v: bytes | None) -> int:
    return int(v) if v else 0


def _undo(data: Data, p: list[str]) -> None:
    for k in p[2:]:
        if data.exists(k):
            data.hincrby(k, "reserved", -int(p[1]))


def sweep_holds(data: Data, resv: str, now: int) -> None:
    nxt = data.hget(resv, "_next")
    if nxt is not None and int(nxt) > now:
        return
    if nxt is None and not data.exists(resv):
        return
    low = -1
    for f, v in data.hgetall(resv).items():
        if f.startswith(b"_"):
            if f != b"_next":
                data.hdel(resv, f.decode())
            continue
        p = v.decode().split()
        exp = int(p[0])
        if exp <= now:
            _undo(data, p)
            data.hdel(resv, f.decode())
        elif low < 0 or exp < low:
            low = exp
    if low < 0:
        data.hdel(resv, "_next")
    else:
        data.hset(resv, "_next", str(low).encode())


# --- sweep ---------------------------------------------------------------------------------
# KEYS: resv. ARGV: now_ms -> 1
SWEEP_LUA = (
    _SWEEP
    + """
sweep(KEYS[1], tonumber(ARGV[1]))
return 1
"""
)


def _sweep_script(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> int:
    sweep_holds(data, keys[0], int(args[0]))
    return 1


SWEEP = Script("frugal_sweep", SWEEP_LUA, _sweep_script)

# --- admit ---------------------------------------------------------------------------------
# KEYS: resv, m rate keys, then budget keys. ARGV: m, tokens, ttl_ms, now_ms, rpm_1, tpm_1, ...
# (-1 = none) -> {1, spent_1, reserved_1, ...} or {0, rate key index (1-based), 1 rpm | 2 tpm}
ADMIT_LUA = (
    _SWEEP
    + """
local m = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
for i = 1, m do
  local rpm = tonumber(ARGV[3 + 2 * i])
  local tpm = tonumber(ARGV[4 + 2 * i])
  local req = tonumber(redis.call('HGET', KEYS[i + 1], 'req') or '0')
  local tok = tonumber(redis.call('HGET', KEYS[i + 1], 'tok') or '0')
  if rpm >= 0 and req + 1 > rpm then return {0, i, 1} end
  if tpm >= 0 and tok + tokens > tpm then return {0, i, 2} end
end
for i = 1, m do
  redis.call('HINCRBY', KEYS[i + 1], 'req', 1)
  redis.call('HINCRBY', KEYS[i + 1], 'tok', ARGV[2])
  redis.call('PEXPIRE', KEYS[i + 1], ARGV[3])
end
sweep(KEYS[1], tonumber(ARGV[4]))
local out = {1}
for i = m + 2, #KEYS do
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
end
return out
"""
)


def _admit(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[int]:
    m, tokens, ttl = int(args[0]), int(args[1]), int(args[2])
    rates = keys[1 : 1 + m]
    for i, k in enumerate(rates):
        rpm, tpm = int(args[4 + 2 * i]), int(args[5 + 2 * i])
        if rpm >= 0 and _int(data.hget(k, "req")) + 1 > rpm:
            return [0, i + 1, 1]
        if tpm >= 0 and _int(data.hget(k, "tok")) + tokens > tpm:
            return [0, i + 1, 2]
    for k in rates:
        data.hincrby(k, "req", 1)
        data.hincrby(k, "tok", tokens)
        data.pexpire(k, ttl)
    sweep_holds(data, keys[0], int(args[3]))
    out = [1]
    for k in keys[1 + m :]:
        out += [_int(data.hget(k, "spent")), _int(data.hget(k, "reserved"))]
    return out


ADMIT = Script("frugal_admit", ADMIT_LUA, _admit)

# --- reserve -------------------------------------------------------------------------------
# KEYS: resv, budget_1..n. ARGV: rid, now_ms, expiry_ms, amount, resv_ttl_ms, limit_1..n,
# key_ttl_ms_1..n (0 = none). -> {1, spent_1, reserved_1, ...} (after) or {0, i, spent, reserved}
# A reservation id already held is not held again (its standing is returned).
RESERVE_LUA = (
    _SWEEP
    + """
local now = tonumber(ARGV[2])
local n = #KEYS - 1
sweep(KEYS[1], now)
local amount = tonumber(ARGV[4])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then amount = 0 end
local out = {1}
for i = 1, n do
  local s = tonumber(redis.call('HGET', KEYS[i + 1], 'spent') or '0')
  local r = tonumber(redis.call('HGET', KEYS[i + 1], 'reserved') or '0')
  if amount > 0 and s + r + amount > tonumber(ARGV[5 + i]) then return {0, i, s, r} end
  out[#out + 1] = s
  out[#out + 1] = r + amount
end
if amount == 0 and tonumber(ARGV[4]) > 0 then return out end
local rec = ARGV[3] .. ' ' .. ARGV[4]
local keep = tonumber(ARGV[5])
local forever = false
for i = 1, n do
  redis.call('HINCRBY', KEYS[i + 1], 'reserved', ARGV[4])
  local ttl = tonumber(ARGV[5 + n + i])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
    if ttl > keep then keep = ttl end
  else
    forever = true
  end
  rec = rec .. ' ' .. KEYS[i + 1]
end
redis.call('HSET', KEYS[1], ARGV[1], rec)
local nxt = redis.call('HGET', KEYS[1], '_next')
if not nxt or tonumber(nxt) > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], '_next', ARGV[3])
end
if forever then
  redis.call('PERSIST', KEYS[1])
else
  local left = redis.call('PTTL', KEYS[1])
  if left < keep then redis.call('PEXPIRE', KEYS[1], keep) end
end
return out
"""
)


def _reserve(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[int]:
    now, asked, n = int(args[1]), int(args[3]), len(keys) - 1
    resv = keys[0]
    sweep_holds(data, resv, now)
    amount = 0 if data.hget(resv, str(args[0])) is not None else asked
    out = [1]
    for i in range(1, n + 1):
        s, r = _int(data.hget(keys[i], "spent")), _int(data.hget(keys[i], "reserved"))
        if amount > 0 and s + r + amount > int(args[4 + i]):
            return [0, i, s, r]
        out += [s, r + amount]
    if amount == 0 and asked > 0:
        return out
    keep, forever = int(args[4]), False
    for i in range(1, n + 1):
        data.hincrby(keys[i], "reserved", asked)
        ttl = int(args[4 + n + i])
        if ttl > 0:
            data.pexpire(keys[i], ttl)
            keep = max(keep, ttl)
        else:
            forever = True
    data.hset(resv, str(args[0]), " ".join([str(args[2]), str(asked), *keys[1:]]).encode())
    nxt = data.hget(resv, "_next")
    if nxt is None or int(nxt) > int(args[2]):
        data.hset(resv, "_next", str(args[2]).encode())
    if forever:
        data.persist(resv)
    elif data.pttl(resv) < keep:
        data.pexpire(resv, keep)
    return out


RESERVE = Script("frugal_reserve", RESERVE_LUA, _reserve)

# --- settle --------------------------------------------------------------------------------
# KEYS: resv, done set (of the reservation's minute), spend ledger, budget_1..n, rate keys...
# ARGV: rid, actual, done_ttl_ms, n, ledger_ttl_ms, prefix ('' = no ledger entry),
#       prompt_tokens, completion_tokens, cost, savings, rate_tokens, strict ('1' = only if the
#       hold is still recorded), then name/value pairs of more ledger counters (the token
#       classes: cached_tokens, cache_write_tokens, reasoning_tokens)
# -> 1 settled, 0 already settled (nothing changed)
SETTLE_STRICT = 11  # index of the `strict` argument
SETTLE_LUA = (
    _SPLIT
    + """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if rec then
  local p = split(rec)
  for j = 3, #p do
    if redis.call('EXISTS', p[j]) == 1 then
      redis.call('HINCRBY', p[j], 'reserved', '-' .. p[2])
    end
  end
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif ARGV[12] == '1' then
  return 0
end
local n = tonumber(ARGV[4])
for i = 4, 3 + n do redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2]) end
for i = 4 + n, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'tok', ARGV[11])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], 120000) end
end
local pre = ARGV[6]
if pre ~= '' then
  redis.call('HINCRBY', KEYS[3], pre .. '|requests', 1)
  redis.call('HINCRBY', KEYS[3], pre .. '|prompt_tokens', ARGV[7])
  redis.call('HINCRBY', KEYS[3], pre .. '|completion_tokens', ARGV[8])
  redis.call('HINCRBY', KEYS[3], pre .. '|cost_nano', ARGV[9])
  redis.call('HINCRBY', KEYS[3], pre .. '|savings_nano', ARGV[10])
  for j = 13, #ARGV - 1, 2 do
    redis.call('HINCRBY', KEYS[3], pre .. '|' .. ARGV[j], ARGV[j + 1])
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
)

LEDGER_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cost_nano", "savings_nano")


def _settle(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> int:
    rid = str(args[0])
    if data.sismember(keys[1], rid):
        return 0
    rec = data.hget(keys[0], rid)
    if rec is not None:
        _undo(data, rec.decode().split())
        data.hdel(keys[0], rid)
    elif str(args[SETTLE_STRICT]) == "1":
        return 0
    n = int(args[3])
    for k in keys[3 : 3 + n]:
        data.hincrby(k, "spent", int(args[1]))
    for k in keys[3 + n :]:
        data.hincrby(k, "tok", int(args[10]))
        if data.pttl(k) < 0:
            data.pexpire(k, 120_000)
    pre = str(args[5])
    if pre:
        values = (1, int(args[6]), int(args[7]), int(args[8]), int(args[9]))
        for name, v in zip(LEDGER_FIELDS, values, strict=True):
            data.hincrby(keys[2], f"{pre}|{name}", v)
        for j in range(SETTLE_STRICT + 1, len(args) - 1, 2):  # more counters, by name
            data.hincrby(keys[2], f"{pre}|{args[j]}", int(args[j + 1]))
        data.pexpire(keys[2], int(args[4]))
    data.sadd(keys[1], rid)
    data.pexpire(keys[1], int(args[2]))
    return 1


SETTLE = Script("frugal_settle", SETTLE_LUA, _settle)

# --- apply ---------------------------------------------------------------------------------
# KEYS: one hash. ARGV: ttl_ms (0 = keep), field_1, amount_1, ... -> 1
APPLY_LUA = """
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""


def _apply(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> int:
    for i in range(1, len(args), 2):
        data.hincrby(keys[0], str(args[i]), int(args[i + 1]))
    if int(args[0]) > 0:
        data.pexpire(keys[0], int(args[0]))
    return 1


APPLY = Script("frugal_apply", APPLY_LUA, _apply)
