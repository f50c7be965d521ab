"""SMS length and part count: GSM-7 (160, 153 per part; extension characters cost 2) vs UCS-2 (70, 67)."""

from __future__ import annotations

from cadences.templating import sms_length_info


def test_gsm7_single_and_multipart() -> None:
    assert sms_length_info("") == {"encoding": "GSM-7", "characters": 0, "segments": 0}
    assert sms_length_info("a" * 160) == {"encoding": "GSM-7", "characters": 160, "segments": 1}
    assert sms_length_info("a" * 161) == {"encoding": "GSM-7", "characters": 161, "segments": 2}
    assert sms_length_info("a" * 306) == {"encoding": "GSM-7", "characters": 306, "segments": 2}
    assert sms_length_info("a" * 307) == {"encoding": "GSM-7", "characters": 307, "segments": 3}


def test_gsm7_accented_letters_in_the_basic_set_stay_gsm7() -> None:
    assert sms_length_info("Café à Zürich £5 @ ¿Ñ?")["encoding"] == "GSM-7"


def test_gsm7_extension_characters_count_twice() -> None:
    assert sms_length_info("€") == {"encoding": "GSM-7", "characters": 2, "segments": 1}
    assert sms_length_info("{" * 80) == {"encoding": "GSM-7", "characters": 160, "segments": 1}
    assert sms_length_info("[" * 81)["segments"] == 2


def test_an_escape_pair_is_never_split_across_parts() -> None:
    # 306 septets would fit in two 153-septet parts, but the euro sign (escape + character) at
    # septets 153-154 cannot straddle them: part 1 = 152, part 2 = 2 + 151 = 153, part 3 = 1.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_length_info(text) == {"encoding": "GSM-7", "characters": 306, "segments": 3}


def test_ucs2_single_and_multipart() -> None:
    assert sms_length_info("ç" * 70) == {"encoding": "UCS-2", "characters": 70, "segments": 1}
    assert sms_length_info("ç" * 71) == {"encoding": "UCS-2", "characters": 71, "segments": 2}
    assert sms_length_info("ç" * 134) == {"encoding": "UCS-2", "characters": 134, "segments": 2}
    assert sms_length_info("ç" * 135) == {"encoding": "UCS-2", "characters": 135, "segments": 3}


def test_one_character_outside_gsm7_switches_the_whole_message() -> None:
    info = sms_length_info("a" * 100 + "’")  # a curly apostrophe
    assert info == {"encoding": "UCS-2", "characters": 101, "segments": 2}


def test_emoji_take_two_ucs2_units_and_are_not_split() -> None:
    assert sms_length_info("😀" * 35) == {"encoding": "UCS-2", "characters": 70, "segments": 1}
    # 134 units would fit in two 67-unit parts, but the emoji's surrogate pair at units 67-68
    # cannot straddle them: part 1 = 66, part 2 = 2 + 65 = 67, part 3 = 1.
    assert sms_length_info("ç" * 66 + "😀" + "ç" * 66) == {"encoding": "UCS-2", "characters": 134, "segments": 3}
