"""The ledger's atomic operations, each written once in Lua (Redis) and once in Python over
`Data` (the in-process store). The contract tests in tests/budget run both against the same
expectations. Amounts are integer nano-USD; every key of one call shares the team's hash tag.

admit   rate limits (requests and tokens per minute) + a snapshot of the team's budgets
reserve sweep expired reservations; check every budget; hold the worst case against all
settle  replace a reservation by the actual cost; write the spend ledger; exactly once
apply   add field amounts to one hash (fail-open reconciliation)
"""

from collections.abc import Sequence

from gateway.store.base import Data, Script, ScriptArg

SWEEP_EVERY_MS = 1000  # also in RESERVE_LUA

_SPLIT = """
local function split(s)
  local t = {}
  for w in string.gmatch(s, '%S+') do t[#t + 1] = w end
  return t
end
"""


def _int(v: bytes | None) -> int:
    return int(v) if v else 0


# --- admit ---------------------------------------------------------------------------------
# KEYS: m rate keys, then budget keys. ARGV: m, tokens, ttl_ms, rpm_1, tpm_1, ... (-1 = none)
# -> {1, spent_1, reserved_1, ...} or {0, rate key index (1-based), 1 rpm | 2 tpm}
ADMIT_LUA = """
local m = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
for i = 1, m do
  local rpm = tonumber(ARGV[2 + 2 * i])
  local tpm = tonumber(ARGV[3 + 2 * i])
  local req = tonumber(redis.call('HGET', KEYS[i], 'req') or '0')
  local tok = tonumber(redis.call('HGET', KEYS[i], 'tok') or '0')
  if rpm >= 0 and req + 1 > rpm then return {0, i, 1} end
  if tpm >= 0 and tok + tokens > tpm then return {0, i, 2} end
end
for i = 1, m do
  redis.call('HINCRBY', KEYS[i], 'req', 1)
  redis.call('HINCRBY', KEYS[i], 'tok', ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
local out = {1}
for i = m + 1, #KEYS do
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
end
return out
"""


def _admit(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[int]:
    m, tokens, ttl = int(args[0]), int(args[1]), int(args[2])
    for i in range(m):
        rpm, tpm = int(args[3 + 2 * i]), int(args[4 + 2 * i])
        if rpm >= 0 and _int(data.hget(keys[i], "req")) + 1 > rpm:
            return [0, i + 1, 1]
        if tpm >= 0 and _int(data.hget(keys[i], "tok")) + tokens > tpm:
            return [0, i + 1, 2]
    for i in range(m):
        data.hincrby(keys[i], "req", 1)
        data.hincrby(keys[i], "tok", tokens)
        data.pexpire(keys[i], ttl)
    out = [1]
    for k in keys[m:]:
        out += [_int(data.hget(k, "spent")), _int(data.hget(k, "reserved"))]
    return out


ADMIT = Script("frugal_admit", ADMIT_LUA, _admit)

# --- reserve -------------------------------------------------------------------------------
# KEYS: resv, budget_1..n. ARGV: rid, now_ms, expiry_ms, amount, resv_ttl_ms, limit_1..n,
# key_ttl_ms_1..n (0 = none). -> {1, spent_1, reserved_1, ...} (after) or {0, i, spent, reserved}
RESERVE_LUA = (
    _SPLIT
    + """
local SWEEP = 1000
local now = tonumber(ARGV[2])
local n = #KEYS - 1
local last = tonumber(redis.call('HGET', KEYS[1], '_sweep') or '0')
if now - last >= SWEEP then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i] ~= '_sweep' then
      local p = split(all[i + 1])
      if tonumber(p[1]) <= now then
        for j = 3, #p do redis.call('HINCRBY', p[j], 'reserved', '-' .. p[2]) end
        redis.call('HDEL', KEYS[1], all[i])
      end
    end
  end
  redis.call('HSET', KEYS[1], '_sweep', ARGV[2])
end
local amount = tonumber(ARGV[4])
local out = {1}
for i = 1, n do
  local s = tonumber(redis.call('HGET', KEYS[i + 1], 'spent') or '0')
  local r = tonumber(redis.call('HGET', KEYS[i + 1], 'reserved') or '0')
  if amount > 0 and s + r + amount > tonumber(ARGV[5 + i]) then return {0, i, s, r} end
  out[#out + 1] = s
  out[#out + 1] = r + amount
end
local rec = ARGV[3] .. ' ' .. ARGV[4]
for i = 1, n do
  redis.call('HINCRBY', KEYS[i + 1], 'reserved', ARGV[4])
  local ttl = tonumber(ARGV[5 + n + i])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i + 1], ARGV[5 + n + i]) end
  rec = rec .. ' ' .. KEYS[i + 1]
end
redis.call('HSET', KEYS[1], ARGV[1], rec)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return out
"""
)


def _sweep(data: Data, resv: str, now: int) -> None:
    if now - _int(data.hget(resv, "_sweep")) < SWEEP_EVERY_MS:
        return
    for f, v in data.hgetall(resv).items():
        if f == b"_sweep":
            continue
        p = v.decode().split()
        if int(p[0]) <= now:
            for k in p[2:]:
                data.hincrby(k, "reserved", -int(p[1]))
            data.hdel(resv, f.decode())
    data.hset(resv, "_sweep", str(now).encode())


def _reserve(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[int]:
    now, amount, n = int(args[1]), int(args[3]), len(keys) - 1
    _sweep(data, keys[0], now)
    out = [1]
    for i in range(1, n + 1):
        s, r = _int(data.hget(keys[i], "spent")), _int(data.hget(keys[i], "reserved"))
        if amount > 0 and s + r + amount > int(args[4 + i]):
            return [0, i, s, r]
        out += [s, r + amount]
    for i in range(1, n + 1):
        data.hincrby(keys[i], "reserved", amount)
        if int(args[4 + n + i]) > 0:
            data.pexpire(keys[i], int(args[4 + n + i]))
    rec = " ".join([str(args[2]), str(amount), *keys[1:]])
    data.hset(keys[0], str(args[0]), rec.encode())
    data.pexpire(keys[0], int(args[4]))
    return out


RESERVE = Script("frugal_reserve", RESERVE_LUA, _reserve)

# --- settle --------------------------------------------------------------------------------
# KEYS: resv, done marker, spend ledger, budget_1..n, rate keys...
# ARGV: rid, actual, done_ttl_ms, n, ledger_ttl_ms, prefix ('' = no ledger entry),
#       prompt_tokens, completion_tokens, cost, savings, rate_tokens
# -> 1 settled, 0 already settled (nothing changed)
SETTLE_LUA = (
    _SPLIT
    + """
if redis.call('GET', KEYS[2]) then return 0 end
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if rec then
  local p = split(rec)
  for j = 3, #p do redis.call('HINCRBY', p[j], 'reserved', '-' .. p[2]) end
  redis.call('HDEL', KEYS[1], ARGV[1])
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
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 1
"""
)

LEDGER_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cost_nano", "savings_nano")


def _settle(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> int:
    if data.get(keys[1]) is not None:
        return 0
    rec = data.hget(keys[0], str(args[0]))
    if rec is not None:
        p = rec.decode().split()
        for k in p[2:]:
            data.hincrby(k, "reserved", -int(p[1]))
        data.hdel(keys[0], str(args[0]))
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
        data.pexpire(keys[2], int(args[4]))
    data.set(keys[1], b"1", int(args[2]))
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
