import pytest

from featurestore.nsynth import Example

from helpers import example

GOOD = example("n", "brass").to_json()


@pytest.mark.parametrize("change, message", [
    ({"pitch": 70000}, "pitch 70000 is out of range"),
    ({"pitch": float("inf")}, "pitch inf is not an integer"),
    ({"velocity": 99.7}, "velocity 99.7 is not an integer"),
    ({"velocity": "loud"}, "velocity 'loud' is not an integer"),
    ({"velocity": "1_00"}, "velocity '1_00' is not an integer"),
    ({"pitch": "9" * 5000}, r"pitch '9{36}\.\.\. is out of range \(-1\.\.127\)"),
    ({"pitch": " -3.00 "}, r"pitch -3 is out of range"),
    ({"instrument": 2**40}, "instrument 1099511627776 is out of range"),
    ({"instrument_family": True}, "instrument_family True is not an integer"),
    ({"instrument_family": 3}, "does not match instrument_family_str 'brass'"),
    ({"instrument_family_str": "theremin"}, "unknown instrument family 'theremin'"),
    ({"instrument_family_str": None, "instrument_family": None}, "missing instrument_family_str"),
    ({"qualities": "0100000000"}, "qualities must be a list of 10 values 0 or 1"),
    ({"qualities": [300] + [0] * 9}, "qualities must be a list of 10 values 0 or 1"),
    ({"instrument_source": 0}, "instrument_source 0 does not match instrument_source_str"),
    ({"instrument_str": ["a", "b"]}, r"instrument_str must be text, got list \['a', 'b'\]"),
    ({"instrument_str": 7}, "instrument_str must be text, got int 7"),
    ({"note_str": {"x": 1}}, "note_str must be text, got dict"),
    ({"instrument_source_str": 2}, "instrument_source_str must be text, got int 2"),
    ({"qualities_str": "bright"}, "qualities_str must be a list of distinct quality names"),
    ({"qualities_str": ["bright", 3]}, r"qualities_str must be .* got \['bright', 3\]"),
    ({"qualities_str": ["bright"] * 3}, "qualities_str must be a list of distinct quality names"),
    ({"qualities_str": ["x" * 10**6]}, r"qualities_str must be .* got \['xxxx"),
])
def test_bad_fields_are_named(change, message):
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        Example.from_json("n", entry)


def test_lenient_where_nothing_is_lost():
    loose = dict(GOOD, velocity="100", pitch=" 64.0 ")
    del loose["instrument_family_str"]  # the number alone says which family
    del loose["instrument_source_str"]  # ... and which source
    parsed = Example.from_json("n", loose)
    assert (parsed.velocity, parsed.pitch, parsed.instrument_family_str) == (100, 64, "brass")
    assert parsed.instrument_source_str == "synthetic"


def test_a_utf8_name_read_in_an_ascii_locale_says_how_to_read_it(monkeypatch):
    import sys
    from featurestore.nsynth import check_text
    read = "Fl\udcc3\udcb6te.wav"  # Fl\u00f6te.wav's UTF-8 bytes, as ASCII's decoder reads them
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")  # LC_ALL=C PYTHONUTF8=0
    with pytest.raises(ValueError, match=r"^name is not valid Unicode \(a lone surrogate\); its "
                                         r"bytes are UTF-8, but this Python reads names as "
                                         r"ascii \(its locale\): run it with PYTHONUTF8=1"):
        check_text({"name": read}, "name")
    with pytest.raises(ValueError, match=r"^name is not valid Unicode \(a lone surrogate\)$"):
        check_text({"name": "Fl\udcf6te.wav"}, "name")  # Latin-1's byte: not UTF-8, no hint
