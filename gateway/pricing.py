"""Money is Decimal: tokens x price per million tokens."""

from decimal import Decimal

from gateway.config import Price
from gateway.usage import Usage

_MILLION = Decimal(1_000_000)
_CENT_FRACTION = Decimal("0.00000001")


def usd(amount: Decimal) -> str:
    """Dollars as a plain decimal string (never `0E-8`)."""
    return format(amount, "f")


def cost(usage: Usage, price: Price) -> Decimal:
    c = (
        usage.prompt_tokens * price.input_per_mtok + usage.completion_tokens * price.output_per_mtok
    ) / _MILLION
    return c.quantize(_CENT_FRACTION)
