"""Reading a reply as a keyword: opt-out, opt-in and help words, whole reply only.

A keyword counts only as the whole message, trimmed, in any case ("please don't stop" is a
reply, not an opt-out). Twilio's `OptOutType` (Advanced Opt-Out), when present, wins over this
reading: Twilio has already acted on it.
"""

from __future__ import annotations

from enum import StrEnum

OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT", "REVOKE"}
)
"""Twilio's default opt-out list and the revocation words of the 2025 US consent rules."""
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


class Keyword(StrEnum):
    """What a message asks of the organization beyond being read."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


TWILIO_OPT_OUT_TYPES = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}


def normalized(body: str) -> str:
    """The reply as keywords are compared: trimmed, upper case, inner spaces collapsed."""
    return " ".join(body.split()).upper()


def might_be_keyword(body: str) -> bool:
    """Whether a reply is one of the words, whoever sent it (`read_keyword` also asks whether
    the contact is opted out)."""
    word = normalized(body)
    return word in OPT_OUT_WORDS or word in OPT_IN_WORDS or word in HELP_WORDS


def read_keyword(body: str, *, opted_out: bool, opt_out_type: str | None = None) -> Keyword | None:
    """The keyword a reply is, if any.

    An opt-in word from a contact who is not opted out is an ordinary reply ("Yes" to "are you
    still interested?" is the best reply there is), so it is no keyword then.
    """
    if opt_out_type:
        told = TWILIO_OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if told is not None:
            return None if told is Keyword.OPT_IN and not opted_out else told
    word = normalized(body)
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN if opted_out else None
    if word in HELP_WORDS:
        return Keyword.HELP
    return None
