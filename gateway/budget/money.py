"""Money in the store is an integer number of nano-dollars (no float drift); Decimal in Python.
Costs are quantized to 1e-8 USD (gateway.pricing), so nano-dollars hold them exactly."""

from decimal import ROUND_CEILING, Decimal

NANO = Decimal(1_000_000_000)


def to_nano(usd: Decimal) -> int:
    """Exact for priced costs; rounds up anything finer (a reservation never falls short)."""
    return int((usd * NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(n: int) -> Decimal:
    return (Decimal(n) / NANO).quantize(Decimal("0.00000001"))


def usd(d: Decimal) -> str:
    """For messages: dollars and cents, more digits only when below a cent."""
    if abs(d) >= Decimal("0.01") or d == 0:
        return f"${d.quantize(Decimal('0.01'))}"
    return f"${d.normalize():f}"
