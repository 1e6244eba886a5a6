"""Store key layout. Every key of a team carries the hash tag `{t:<team>}`, so that every
script call (which only touches one team's keys) lands on one Redis Cluster slot.

    frugal:{t:T}:bud:<scope>:<window>   hash spent, reserved (nano-USD); scope team | key.<id>
    frugal:{t:T}:resv                   hash reservation id -> "expiry_ms amount key..." and
                                        `_next` (earliest expiry): the holds (scripts.py)
    frugal:{t:T}:done:<minute>          set of the reservation ids of that minute already
                                        settled (no reservation is settled twice); lives
                                        `budget.reservation_ttl_s` x 2 + 60 s
    frugal:{t:T}:bud:failopen           (in process only) this replica's fail-open allowance
    frugal:{t:T}:rl:<scope>:<minute>    hash req, tok (fixed one-minute window)
    frugal:{t:T}:spend:<YYYY-MM-DD>     hash "<key_id>|<model>|<tier>|<metric>" -> int
    frugal:{t:T}:alert:<scope>:<window> counter: the soft-threshold webhook fires at 1
"""

from datetime import date


def tag(team: str) -> str:
    return f"frugal:{{t:{team}}}"


def scope(key_id: str | None) -> str:
    return "team" if key_id is None else f"key.{key_id}"


def budget(team: str, key_id: str | None, window_id: str) -> str:
    return f"{tag(team)}:bud:{scope(key_id)}:{window_id}"


def reservations(team: str) -> str:
    return f"{tag(team)}:resv"


def done(team: str, minute: int) -> str:
    return f"{tag(team)}:done:{minute}"


def fail_open(team: str) -> str:
    return f"{tag(team)}:bud:failopen"


def rate(team: str, key_id: str | None, minute: int) -> str:
    return f"{tag(team)}:rl:{scope(key_id)}:{minute}"


def spend(team: str, day: date) -> str:
    return f"{tag(team)}:spend:{day.isoformat()}"


def alert(team: str, key_id: str | None, window_id: str) -> str:
    return f"{tag(team)}:alert:{scope(key_id)}:{window_id}"
