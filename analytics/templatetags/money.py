"""Template filters for numbers on pages: money (stored in integer fen) in yuan, and counts."""

from decimal import Decimal

from django import template

register = template.Library()

FEN_PER_YUAN = Decimal(100)
CENT = Decimal("0.01")
# Shown for a missing amount; PRODUCT.md's mark for "undefined".
UNDEFINED = "—"


@register.filter
def yuan(fen) -> str:
    """Format an amount in fen as yuan: 123456 → "¥1,234.56", -500 → "-¥5.00"."""
    if fen is None or fen == "":
        return UNDEFINED
    try:
        amount = (Decimal(fen) / FEN_PER_YUAN).quantize(CENT)
    except (ArithmeticError, TypeError, ValueError):
        return UNDEFINED
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


@register.filter
def grouped(count) -> str:
    """A count with thousands separators, as dashboards show it: 1234567 → "1,234,567"."""
    if count is None or count == "":
        return UNDEFINED
    try:
        return f"{int(count):,d}"
    except (TypeError, ValueError):
        return UNDEFINED
