"""SMS message templates and what a message costs to send; pure functions, no I/O.

A template is checked once, when it is saved, so that sending never meets a typo; rendering then
refuses, per recipient, to produce a half-personalised message such as "Hi ,".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

PLACEHOLDER_FIELDS: frozenset[str] = frozenset({"firstName", "lastName", "phoneNumber", "email"})
MAX_RENDERED_CHARS = 1600
MAX_PROBLEMS = 20
"""A template with more problems than this is reported with the first ones only."""

_OPEN = "{{"
_CLOSE = "}}"
_ALLOWED = ", ".join(sorted(PLACEHOLDER_FIELDS))

# 3GPP TS 23.038 section 6.2.1, code points 0x00-0x7F in order, without 0x1B (the escape).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Section 6.2.1.1: each is sent as the escape plus one septet.
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67


class TemplateError(ValueError):
    """Carries every problem of a template at once, so the author can fix them in one pass."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class _Placeholder:
    name: str
    fallback: str | None  # None: the recipient must have a value; "" renders nothing on purpose.


@dataclass(frozen=True)
class Rendered:
    """One recipient's message; a non-empty `missing` means it must not be sent (`text` is "")."""

    text: str
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    """A checked template: building one (directly or via `parse_template`) raises `TemplateError`.

    Parsing in `__post_init__` means no unchecked Template can reach the sending code.
    """

    text: str
    _parts: tuple[str | _Placeholder, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parts", _parse(self.text))

    def placeholders(self) -> frozenset[str]:
        """Lets callers fetch only the contact fields a campaign needs."""
        return frozenset(p.name for p in self._placeholders())

    def required_fields(self) -> frozenset[str]:
        """Fields without which some recipient would be skipped; one fallback use does not excuse
        another use without one."""
        return frozenset(p.name for p in self._placeholders() if p.fallback is None)

    def render(self, values: Mapping[str, str | None]) -> Rendered:
        """Personalises for one recipient; an absent key counts as no value.

        Raises `TemplateError` (MESSAGE_TOO_LONG) past `MAX_RENDERED_CHARS`, as no carrier sends it.
        """
        chunks: list[str] = []
        missing: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                chunks.append(part)
                continue
            value = (values.get(part.name) or "").strip()
            if value:
                chunks.append(value)
            elif part.fallback is not None:
                chunks.append(part.fallback)
            elif part.name not in missing:
                missing.append(part.name)
        if missing:
            return Rendered(text="", missing=tuple(missing))
        text = "".join(chunks)
        if len(text) > MAX_RENDERED_CHARS:
            raise TemplateError([_too_long(len(text))])
        return Rendered(text=text, missing=())

    def _placeholders(self) -> list[_Placeholder]:
        return [p for p in self._parts if isinstance(p, _Placeholder)]


def parse_template(text: str) -> Template:
    """The one entry point for user-written templates; raises `TemplateError`."""
    return Template(text)


def _too_long(length: int) -> tuple[str, str]:
    return (
        "MESSAGE_TOO_LONG",
        f"Message is {length} characters; the limit is {MAX_RENDERED_CHARS}",
    )


def _parse(text: str) -> tuple[str | _Placeholder, ...]:
    """Splits into literals and placeholders, collecting all problems before raising.

    Positions in messages are 0-based character indexes. In a run like `{{{`, the last two
    braces open the placeholder, so `{{{firstName}}}` renders as `{Ann}`.
    """
    if not text.strip():
        raise TemplateError([("EMPTY_MESSAGE", "Message is empty")])
    parts: list[str | _Placeholder] = []
    problems: list[tuple[str, str]] = []
    unknown: set[str] = set()
    literal_start = i = 0
    while (start := text.find(_OPEN, i)) != -1:
        while text.startswith("{", start + 2):
            start += 1
        _check_stray_close(text, i, start, problems)
        end = text.find(_CLOSE, start + 2)
        if end == -1:
            # No `}}` anywhere after this point: every later `{{` is unclosed too, so report
            # this one and stop (scanning on would be quadratic in the text's length).
            problems.append(("MALFORMED_PLACEHOLDER", f"Unclosed '{{{{' at position {start}"))
            i = literal_start = len(text)
            break
        if text.find(_OPEN, start + 2, end) != -1:
            problems.append(("MALFORMED_PLACEHOLDER", f"Unclosed '{{{{' at position {start}"))
            i = start + 2
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        name, bar, fallback = text[start + 2 : end].partition("|")
        name = name.strip()
        if not name:
            problems.append(("MALFORMED_PLACEHOLDER", f"Empty placeholder at position {start}"))
        elif name not in PLACEHOLDER_FIELDS and name not in unknown:
            unknown.add(name)
            message = f"Unknown placeholder {{{{{name}}}}}; use one of: {_ALLOWED}"
            problems.append(("UNKNOWN_PLACEHOLDER", message))
        parts.append(text[literal_start:start])
        parts.append(_Placeholder(name, fallback.strip() if bar else None))
        literal_start = i = end + 2
    _check_stray_close(text, i, len(text), problems)
    parts.append(text[literal_start:])
    literal_length = sum(len(p) for p in parts if isinstance(p, str))
    if literal_length > MAX_RENDERED_CHARS:
        problems.append(_too_long(literal_length))
    if problems:
        raise TemplateError(problems[:MAX_PROBLEMS])
    return tuple(p for p in parts if p)


def _check_stray_close(text: str, start: int, end: int, problems: list[tuple[str, str]]) -> None:
    """A `}}` outside a placeholder is almost always a typo like `{firstName}}`, not intent."""
    position = text.find(_CLOSE, start, end)
    while position != -1:
        problems.append(("MALFORMED_PLACEHOLDER", f"Unmatched '}}}}' at position {position}"))
        position = text.find(_CLOSE, position + 2, end)


@dataclass(frozen=True)
class SmsCost:
    """What a carrier bills for one message, and the counts behind it for display."""

    encoding: str
    segments: int
    characters: int
    units: int


_NOT_GSM7 = re.compile("[^" + re.escape("".join(sorted(_GSM7_BASIC | _GSM7_EXTENSION))) + "]")
_DOUBLE_UNITS = {
    "GSM-7": re.compile("[" + re.escape("".join(sorted(_GSM7_EXTENSION))) + "]"),
    "UCS-2": re.compile("[\U00010000-\U0010ffff]"),
}


def sms_cost(text: str) -> SmsCost:
    """Segments are counted by filling greedily, because an escape pair or a surrogate pair is
    never split across segments; an empty text costs 0 segments.

    Runs once per recipient, so the common case (one segment) is settled with regular
    expressions, in C, and only a multi-part message is walked character by character.
    """
    if _NOT_GSM7.search(text) is None:
        encoding, single, part = "GSM-7", _GSM7_SINGLE, _GSM7_PART
    else:
        encoding, single, part = "UCS-2", _UCS2_SINGLE, _UCS2_PART
    double = _DOUBLE_UNITS[encoding]
    units = len(text) + len(double.findall(text))
    if units <= single:
        segments = 1 if text else 0
    else:
        segments, used = 1, 0
        for c in text:
            size = 2 if double.match(c) else 1
            if used + size > part:
                segments, used = segments + 1, 0
            used += size
    return SmsCost(encoding=encoding, segments=segments, characters=len(text), units=units)
