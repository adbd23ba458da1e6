"""Money: integer fen (1 yuan = 100 fen) for documents and claims, integer micro-yuan
(1 yuan = 1,000,000 micro-yuan) for usage estimates, ``Decimal`` in between. Never floats.

``to_capital`` writes an amount in Chinese capital numerals (大写金额) following the
People's Bank of China rules for filling in vouchers (正确填写票据和结算凭证的基本规定).
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from ledger.errors import FieldError

FEN_PER_YUAN = 100
MICRO_PER_YUAN = 1_000_000
MICRO_PER_FEN = 10_000
MAX_FEN = 10**15  # ¥10 trillion: far beyond any invoice, small enough to catch typos

ROUNDINGS = {"down": ROUND_DOWN, "half_up": ROUND_HALF_UP}

_YUAN_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,2}))?$")
_GROUPED_RE = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_yuan(text: str | int | Decimal, field: str, *, allow_negative: bool = False,
               allow_zero: bool = True) -> int:
    """``"106.00"`` -> 10600 fen. Refuses floats, more than two decimals and stray characters.

    Thousands separators are accepted only where they belong (``1,234.56``); ``¥`` is stripped.
    """
    if isinstance(text, float):
        raise FieldError(field, text, "amounts must be decimal strings, not floats", hint='write e.g. "106.00"')
    if isinstance(text, bool):
        raise FieldError(field, text, "not an amount")
    if isinstance(text, int):
        text = str(text)
    if isinstance(text, Decimal):
        text = format(text, "f")
    s = str(text).strip().replace("￥", "").replace("¥", "").replace("，", ",").strip()
    if "," in s:
        if not _GROUPED_RE.match(s):
            raise FieldError(field, text, "misplaced thousands separator", hint='write e.g. "1234.56" or "1,234.56"')
        s = s.replace(",", "")
    m = _YUAN_RE.match(s)
    if not m:
        if re.match(r"^-?\d+\.\d{3,}$", s):
            raise FieldError(field, text, "has more than two decimal places; amounts are in yuan to the fen (分)",
                             hint="round on the document itself, never here")
        raise FieldError(field, text, "is not an amount in yuan", hint='write e.g. "106.00" (digits, at most two decimals)')
    sign, whole, frac = m.group(1), m.group(2), (m.group(3) or "")
    fen = int(whole) * FEN_PER_YUAN + int((frac + "00")[:2])
    if sign:
        fen = -fen
    if fen < 0 and not allow_negative:
        raise FieldError(field, text, "must not be negative", hint="corrections are reversals: use the void/reverse command")
    if fen == 0 and not allow_zero:
        raise FieldError(field, text, "must be more than zero")
    if abs(fen) >= MAX_FEN:
        raise FieldError(field, text, "is implausibly large", hint="check the amount; it is in yuan, not fen")
    return fen


def fen_to_decimal(fen: int) -> Decimal:
    """10600 -> Decimal('106.00')."""
    return (Decimal(int(fen)) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def format_fen(fen: int, *, grouping: bool = True, symbol: str = "") -> str:
    """10600 -> '106.00'; 123456789 -> '1,234,567.89'."""
    value = fen_to_decimal(fen)
    text = f"{value:,.2f}" if grouping else f"{value:.2f}"
    return f"{symbol}{text}" if not text.startswith("-") else f"-{symbol}{text[1:]}"


def micro_to_decimal(micro: int) -> Decimal:
    return (Decimal(int(micro)) / MICRO_PER_YUAN).quantize(Decimal("0.000001"))


def round_fen(value: Decimal, mode: str) -> int:
    """An exact fen amount (Decimal, may have fractions of a fen) -> integer fen by ``mode``."""
    try:
        rounding = ROUNDINGS[mode]
    except KeyError as e:
        raise FieldError("rounding", mode, f"unknown rounding; use one of {', '.join(ROUNDINGS)}") from e
    return int(value.quantize(Decimal(1), rounding=rounding))


def micro_to_fen(micro: int, mode: str = "half_up") -> int:
    return round_fen(Decimal(int(micro)) / MICRO_PER_FEN, mode)


def parse_decimal(text: str | int | Decimal, field: str, *, allow_negative: bool = False) -> Decimal:
    """An exact decimal from a string (or int/Decimal); floats, NaN and infinities are refused."""
    if isinstance(text, float):
        raise FieldError(field, text, "must be a decimal string, not a float", hint='write it in quotes, e.g. "2.00"')
    if isinstance(text, bool):
        raise FieldError(field, text, "is not a number")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as e:
        raise FieldError(field, text, "is not a decimal number") from e
    if not value.is_finite():
        raise FieldError(field, text, "must be a finite number")
    if value < 0 and not allow_negative:
        raise FieldError(field, text, "must not be negative")
    return value


def parse_rate(text: str | Decimal, field: str) -> Decimal:
    """``"30%"`` or ``"0.30"`` -> Decimal('0.30'); must lie in [0, 1]."""
    s = str(text).strip()
    value = parse_decimal(s[:-1], field) / 100 if s.endswith("%") else parse_decimal(s, field)
    if value > 1:
        raise FieldError(field, text, "a rate must be between 0 and 1 (or 0% and 100%)")
    return value


def format_rate(rate: Decimal) -> str:
    """Decimal('0.3600') -> '36%'; Decimal('0.125') -> '12.5%'."""
    pct = (rate * 100).normalize()
    text = format(pct, "f")
    return f"{text}%"


def rate_str(rate: Decimal) -> str:
    """Canonical string of a rate for JSON and hashing: at least two decimals, no exponent."""
    q = rate.normalize()
    text = format(q, "f")
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return text


# --- 大写金额 -------------------------------------------------------------------------------
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ("", "拾", "佰", "仟")
_BIG_UNITS = ("", "万", "亿", "万亿")


def _integer_capital(n: int) -> str:
    """Whole yuan in capitals, one 零 for each run of zeros inside the number."""
    if n == 0:
        return _DIGITS[0]
    digits = str(n)
    if len(digits) > 16:
        raise FieldError("amount", n, "is too large to write in capital numerals")
    out: list[str] = []
    zero_pending = False
    group_has_digit = False
    length = len(digits)
    for i, ch in enumerate(digits):
        pos = length - 1 - i
        d = int(ch)
        if d == 0:
            zero_pending = True
        else:
            if zero_pending and out:
                out.append(_DIGITS[0])
            zero_pending = False
            group_has_digit = True
            out.append(_DIGITS[d] + _SMALL_UNITS[pos % 4])
        if pos % 4 == 0:
            if group_has_digit and pos > 0:
                out.append(_BIG_UNITS[pos // 4])
            group_has_digit = False
    return "".join(out)


def to_capital(fen: int) -> str:
    """Amount in fen -> 大写金额, e.g. 123456789 -> 壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分.

    Rules: 元 is followed by 整 when there are no 角/分; a zero 角 between 元 and a 分 is written
    零 (壹佰万元零伍分); amounts under one yuan omit 零元 (伍角, 伍分); negatives start with 负.
    """
    fen = int(fen)
    if fen < 0:
        return "负" + to_capital(-fen)
    yuan, rest = divmod(fen, 100)
    jiao, cents = divmod(rest, 10)
    if yuan == 0 and rest == 0:
        return "零元整"
    parts: list[str] = []
    if yuan:
        parts.append(_integer_capital(yuan) + "元")
    if jiao == 0 and cents == 0:
        parts.append("整")
    else:
        if jiao:
            parts.append(_DIGITS[jiao] + "角")
        elif yuan:
            parts.append(_DIGITS[0])
        if cents:
            parts.append(_DIGITS[cents] + "分")
    return "".join(parts)
