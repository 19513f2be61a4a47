"""Message templates and SMS cost: exact values, so an off-by-one in a table or a limit fails."""

from __future__ import annotations

import pytest

from services.campaigns.templates import (
    MAX_RENDERED_CHARS,
    PLACEHOLDER_FIELDS,
    Rendered,
    SmsCost,
    Template,
    TemplateError,
    parse_template,
    sms_cost,
)

ALLOWED = "email, firstName, lastName, phoneNumber"
GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EMOJI = "\N{GRINNING FACE}"


def problems_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as caught:
        parse_template(text)
    return caught.value.problems


# --- SMS cost ---------------------------------------------------------------------------------


def test_empty_text_costs_zero_segments() -> None:
    assert sms_cost("") == SmsCost(encoding="GSM-7", segments=0, characters=0, units=0)


def test_whole_gsm7_basic_table_is_one_septet_each() -> None:
    assert sms_cost(GSM7_BASIC_TABLE) == SmsCost("GSM-7", 1, 127, 127)


def test_gsm7_160_septets_is_one_segment() -> None:
    assert sms_cost("a" * 160) == SmsCost("GSM-7", 1, 160, 160)


def test_gsm7_161_septets_is_two_segments() -> None:
    assert sms_cost("a" * 161) == SmsCost("GSM-7", 2, 161, 161)


def test_gsm7_306_septets_is_two_segments() -> None:
    assert sms_cost("a" * 306).segments == 2


def test_gsm7_307_septets_is_three_segments() -> None:
    assert sms_cost("a" * 307).segments == 3


def test_extension_chars_count_two_septets() -> None:
    assert sms_cost("^{}\\[~]|€\f") == SmsCost("GSM-7", 1, 10, 20)


def test_80_euro_signs_fit_one_segment() -> None:
    assert sms_cost("€" * 80) == SmsCost("GSM-7", 1, 80, 160)


def test_81_euro_signs_need_two_segments() -> None:
    assert sms_cost("€" * 81) == SmsCost("GSM-7", 2, 81, 162)


def test_escape_pair_is_not_split_across_segments() -> None:
    # 306 septets would fit 2 x 153, but the euro sign cannot start at septet 153.
    assert sms_cost("a" * 152 + "€" + "a" * 152) == SmsCost("GSM-7", 3, 305, 306)


def test_ucs2_70_units_is_one_segment() -> None:
    assert sms_cost("ç" + "a" * 69) == SmsCost("UCS-2", 1, 70, 70)


def test_ucs2_71_units_is_two_segments() -> None:
    assert sms_cost("ç" + "a" * 70) == SmsCost("UCS-2", 2, 71, 71)


def test_ucs2_134_units_is_two_segments() -> None:
    assert sms_cost("ç" * 134).segments == 2


def test_ucs2_135_units_is_three_segments() -> None:
    assert sms_cost("ç" * 135).segments == 3


def test_emoji_is_one_character_but_two_units() -> None:
    assert sms_cost(EMOJI) == SmsCost("UCS-2", 1, 1, 2)


def test_surrogate_pair_is_not_split_across_segments() -> None:
    # 134 units would fit 2 x 67, but the emoji cannot start at unit 67.
    assert sms_cost("a" * 66 + EMOJI + "a" * 66) == SmsCost("UCS-2", 3, 133, 134)


def test_uppercase_c_cedilla_is_gsm7() -> None:
    assert sms_cost("Ça va").encoding == "GSM-7"


def test_lowercase_c_cedilla_switches_whole_message_to_ucs2() -> None:
    assert sms_cost("a" * 100 + "ç") == SmsCost("UCS-2", 2, 101, 101)


def test_curly_apostrophe_switches_to_ucs2() -> None:
    assert sms_cost("It\N{RIGHT SINGLE QUOTATION MARK}s here").encoding == "UCS-2"


# --- Parsing ----------------------------------------------------------------------------------


def test_placeholder_fields_are_the_contact_fields() -> None:
    assert frozenset({"firstName", "lastName", "phoneNumber", "email"}) == PLACEHOLDER_FIELDS


def test_unknown_placeholder_error_names_it_and_lists_allowed() -> None:
    assert problems_of("Hi {{fristName}}") == [
        ("UNKNOWN_PLACEHOLDER", f"Unknown placeholder {{{{fristName}}}}; use one of: {ALLOWED}")
    ]


def test_all_unknown_placeholders_are_reported_in_one_error_once_each() -> None:
    codes_and_names = [
        (code, message.split(";")[0]) for code, message in problems_of("{{a}} {{b|x}} {{a}}")
    ]
    assert codes_and_names == [
        ("UNKNOWN_PLACEHOLDER", "Unknown placeholder {{a}}"),
        ("UNKNOWN_PLACEHOLDER", "Unknown placeholder {{b}}"),
    ]


def test_placeholder_names_are_case_sensitive() -> None:
    assert [code for code, _ in problems_of("Hi {{FirstName}}")] == ["UNKNOWN_PLACEHOLDER"]


def test_error_message_joins_all_problems() -> None:
    with pytest.raises(TemplateError, match=r"\{\{x\}\}.*; Unknown placeholder \{\{y\}\}"):
        parse_template("{{x}}{{y}}")


def test_whitespace_only_template_is_empty_message() -> None:
    assert problems_of(" \n\t ") == [("EMPTY_MESSAGE", "Message is empty")]


def test_unclosed_braces_are_malformed() -> None:
    assert problems_of("Hello {{firstName") == [
        ("MALFORMED_PLACEHOLDER", "Unclosed '{{' at position 6")
    ]


def test_unclosed_braces_before_a_valid_placeholder_are_malformed() -> None:
    assert problems_of("Hi {{first {{lastName}}") == [
        ("MALFORMED_PLACEHOLDER", "Unclosed '{{' at position 3")
    ]


def test_unmatched_closing_braces_are_malformed() -> None:
    assert problems_of("Hi {firstName}}") == [
        ("MALFORMED_PLACEHOLDER", "Unmatched '}}' at position 13")
    ]


def test_empty_placeholder_is_malformed() -> None:
    assert problems_of("Hi {{ |there}}") == [
        ("MALFORMED_PLACEHOLDER", "Empty placeholder at position 3")
    ]


def test_literal_longer_than_limit_is_refused_when_parsed() -> None:
    assert problems_of("a" * (MAX_RENDERED_CHARS + 1)) == [
        ("MESSAGE_TOO_LONG", "Message is 1601 characters; the limit is 1600")
    ]


def test_template_cannot_be_built_unchecked() -> None:
    with pytest.raises(TemplateError):
        Template("{{nope}}")


def test_inner_whitespace_around_name_is_allowed() -> None:
    assert parse_template("Hi {{ firstName }}").placeholders() == {"firstName"}


def test_required_fields_exclude_fields_only_used_with_fallback() -> None:
    template = parse_template("{{firstName|there}} {{lastName}} {{email|}}")
    assert template.placeholders() == {"firstName", "lastName", "email"}
    assert template.required_fields() == {"lastName"}


def test_field_used_once_without_fallback_is_required() -> None:
    template = parse_template("{{firstName|there}}, or {{firstName}}")
    assert template.required_fields() == {"firstName"}


# --- Rendering --------------------------------------------------------------------------------


def test_value_is_substituted_trimmed() -> None:
    template = parse_template("Hi {{ firstName }}!")
    assert template.render({"firstName": "  Ann \n"}) == Rendered(text="Hi Ann!", missing=())


def test_fallback_used_when_value_absent() -> None:
    assert parse_template("Hi {{firstName|there}}!").render({}).text == "Hi there!"


def test_fallback_used_when_value_is_whitespace() -> None:
    rendered = parse_template("Hi {{firstName|there}}!").render({"firstName": "   "})
    assert rendered == Rendered(text="Hi there!", missing=())


def test_fallback_is_trimmed_and_keeps_later_pipes() -> None:
    assert parse_template("{{firstName|  a | b  }}").render({"firstName": None}).text == "a | b"


def test_empty_fallback_renders_nothing_and_is_not_missing() -> None:
    rendered = parse_template("Hi{{ firstName |}}!").render({"firstName": None})
    assert rendered == Rendered(text="Hi!", missing=())


def test_missing_value_without_fallback_is_reported_and_not_rendered() -> None:
    rendered = parse_template("Hi {{firstName}}, see you").render({"firstName": None})
    assert rendered == Rendered(text="", missing=("firstName",))


def test_missing_fields_are_listed_once_in_order_of_use() -> None:
    template = parse_template("{{lastName}} {{email}} {{lastName}} {{firstName}}")
    assert template.render({"firstName": "Ann", "email": ""}).missing == ("lastName", "email")


def test_single_braces_are_literal() -> None:
    template = parse_template("Code {A1} } { for {{firstName}}")
    assert template.render({"firstName": "Ann"}).text == "Code {A1} } { for Ann"


def test_brace_next_to_placeholder_is_literal() -> None:
    assert parse_template("{{{firstName}}}").render({"firstName": "Ann"}).text == "{Ann}"


def test_rendering_at_limit_is_allowed() -> None:
    template = parse_template("{{firstName}}" + "a" * (MAX_RENDERED_CHARS - 3))
    assert len(template.render({"firstName": "Ann"}).text) == MAX_RENDERED_CHARS


def test_rendering_over_limit_is_refused() -> None:
    template = parse_template("{{firstName}}" + "a" * (MAX_RENDERED_CHARS - 3))
    with pytest.raises(TemplateError) as caught:
        template.render({"firstName": "Anna"})
    assert caught.value.problems == [
        ("MESSAGE_TOO_LONG", "Message is 1601 characters; the limit is 1600")
    ]
