"""The scanner's shortcuts find exactly what the plain search finds: the trie keyword index
(TrieIndex), the skipping of detectors whose hints a text lacks, and the bounded look at a
candidate's line. Timing is measured in bench/redaction_worst.py, not here."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from proxy.redact import detectors, personal_checks, secret_detectors
from proxy.redact.builtin import BUILTIN
from proxy.redact.detectors import SharedText, TrieIndex, scan

TEXTS = [
    "",
    "a",
    "api_key=" * 50,
    "API_KEY=" * 20 + "Api_Key = 'q8Zr2LmV0xWk5TnP7sHd'",
    "sk-ant-api03-" + "A" * 90 + " and sk-" + "0123456789abcdef" * 2,
    "my password is river52288, my Password: Tiger1992@ and PASS=hunter2hunter2",
    "Authorization: Bearer " * 10 + "Authorization: Bearer abcDEF123456ghiJKL789",
    "İstanbul password=Tiger1992@ token=q8Zr2LmV0xWk5TnP7sHd",  # lower() changes the length
    "Straße 5, Dear Mr. Smith, call +1 415 555 0132 or 4111 1111 1111 1111 on 2024-01-02",
    "eyJ" * 30 + " -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_trie_finds_every_keyword_occurrence_str_find_finds(text):
    trie = TrieIndex.of(BUILTIN)
    hits = trie.hits(SharedText(text, None))
    if hits is None:
        assert len(text.lower()) != len(text)
        return
    for position, d in enumerate(BUILTIN):
        plain, indexed = SharedText(text, None), SharedText(text, hits)
        assert indexed.windows(d, position) == plain.windows(d, position), d.id
        if d.anchored:
            assert indexed.starts(d, position) == plain.starts(d, position), d.id


@pytest.mark.parametrize("text", TEXTS)
def test_skipping_detectors_without_hints_changes_no_finding(text, monkeypatch):
    fast = scan(text, BUILTIN)
    # every detector run over its windows, as before the index: no hits table, no skipping
    monkeypatch.setattr(TrieIndex, "hits", lambda self, shared: None)
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert scan(text, BUILTIN) == fast


def test_repeated_keys_still_find_every_real_secret_among_them():
    secrets = ["q8Zr2LmV0xWk5TnP7sHd", "Zt4Kd9QwX2mLp7RvN3bY", "hV6nB1cX8zQ4wE7rT2yU"]
    text = "".join("api_key=" * 300 + f"api_key={s} " for s in secrets)
    redacted, _ = detectors.redact_text(text, BUILTIN, "[REDACTED]")
    assert not any(s in redacted for s in secrets)
    spaced = "".join("api_key=\n" * 300 + f"api_key={s}\n" for s in secrets)
    found = [spaced[f.start : f.end] for f in scan(spaced, BUILTIN)]
    assert found == secrets


# the reference pattern as one alternation, as it was before it was split in two
_REFERENCE_AS_ONE = re.compile(
    r"""\$\{|\$\(|\$[A-Z_][A-Z0-9_]*$|%[A-Za-z_]+%|\{\{|\{%|<[^>]*>|\[\[|%\(\w+\)s
    |^[\[{(_]|^\.[A-Za-z]|\*\*\*|xxxx|XXXX|\.\.\.|…|REDACTED|\[REDACTED|^[!&*@]|^\{\w*\}$
    |^\w[\w.]*\s*\(|^\w[\w.]*\[|^(?:process\.env|os\.environ|ENV|env|secrets|vars|config|
    settings|self|this|props|params|args|opts|options|ctx|context|request|req)\b[.\[]
    |://|^[~.]?/""",
    re.VERBOSE,
)


def test_the_split_reference_pattern_judges_values_as_the_single_one_did():
    rng = random.Random(0)
    alphabet = "${}()%<>[]*x.…R:/~!&@_aZ9 \nEenvsX"
    values = ["${PASS}", "os.environ[", "self.x", "REDACTED", "a://b", "{x}", "ok_value1"]
    values += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(20000)
    ]
    for value in values:
        assert secret_detectors._reference(value) == bool(_REFERENCE_AS_ONE.search(value)), value


@pytest.mark.parametrize("text", [*TEXTS, "api_key=" * 600, "password=" * 400 + "Tiger1992@x"])
def test_remembered_verdicts_change_no_finding(text, monkeypatch):
    remembered = scan(text, BUILTIN)
    monkeypatch.setattr(detectors, "_MEMO_MIN", 10**9)  # every value validated afresh
    assert scan(text, BUILTIN) == remembered


def test_a_chain_of_keys_is_redacted_whole_and_a_short_one_value_by_value():
    # each value runs over the next key: past detectors.CHAIN of them, the run is one value
    for chain in ("fooKey=" * 1000, "token:" * 1000):  # no value alone is a credential
        found = scan(chain, BUILTIN)
        covered = sum(f.end - f.start for f in found)
        assert covered > 0.95 * len(chain), found
    # two keys glued together are still decided value by value
    short = "api_key=api_key=q8Zr2LmV0xWk5TnP7sHd and token=token=Zt4Kd9QwX2mLp7RvN3bY"
    redacted, _ = detectors.redact_text(short, BUILTIN, "[REDACTED]")
    assert "q8Zr2LmV0xWk5TnP7sHd" not in redacted and "Zt4Kd9QwX2mLp7RvN3bY" not in redacted


def test_a_scan_past_its_deadline_raises_and_one_within_it_finds_as_without():
    text = "key AKIAIOSFODNN7EXAMPLE, call +1 415 555 0132 " * 20
    with pytest.raises(detectors.TooSlow), detectors.deadline(-1.0):
        scan(text, BUILTIN)
    with detectors.deadline(60.0):
        within = scan(text, BUILTIN)
    assert within == scan(text, BUILTIN) and within


def _random_texts(alphabet: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def test_the_keyword_pass_finds_the_runs_of_digits_the_regex_finds():
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: the regex is the only path")
    index = detectors.KeywordIndex.of(BUILTIN)
    pieces = ["0", "7", "12", " ", "(", ")", ".", "-", "a", "_", "é", "東", "\n", "x" * 70]
    shapes = ["1234567", "(415) 555-0100)", "- 1234567 -", "x" * 300 + "12 34 56 7", "1" * 900]
    texts = [*TEXTS, *shapes, *("é" + s for s in shapes), *_random_texts(pieces, 3000, 0)]
    for text in texts:
        assert index.shared(text).digit_runs == SharedText(text, None).digit_runs, text


def test_a_label_is_read_only_where_its_cues_are_and_found_as_everywhere(monkeypatch):
    from proxy.redact import personal_checks as check

    pieces = ["phone", "Tel: ", "my_number", "call-me ", "[REDACTED:phone]", "<PHONE_1>", "uk",
              "London", "München", "電話 ", "tél ", ",", "\n", " ", "4155550132", "020 7946 0958",
              "x" * 80, "order", "É"]  # fmt: skip
    texts = _random_texts(pieces, 1500, 1)
    numbers = re.compile(r"\d[\d ]*\d")
    cases = [(t, m.start(), m.end()) for t in texts for m in numbers.finditer(t)]

    def read(t: str, start: int, end: int) -> tuple:
        return (check.labelled(check._PHONE_WORDS, t, start, end, check._PHONE_CUES),
                check.regions_in_context(t, start, end))  # fmt: skip

    with_cues = [read(*case) for case in cases]
    monkeypatch.setattr(check, "_cue_starts", lambda cues, text: None)  # every label read
    assert with_cues == [read(*case) for case in cases]
    assert any(labelled for labelled, _ in with_cues) and any(r for _, r in with_cues)


def test_detectors_run_around_their_hints_find_what_they_find_in_the_whole_text(monkeypatch):
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: hinted detectors run over the whole text")
    assert [d.id for d in BUILTIN if d.hint]  # (ip-address, uk-nino, it-fiscal-code)
    pieces = ["8.8.8.8", "203.0.113.9", "2a00:1450:4009:81f::200e", "2001:db8::1", "10.0.0.1",
              "AB123456C", "QQ 12 34 56 A", "JG 10 35 42 B", "RSSMRA85T10A562S", ".", ":", "/",
              "a", "Z", "1", "2", "3", " ", "\n", "v", "é", "-", "x" * 30]  # fmt: skip
    hinted = found_with_and_without_hyperscan(monkeypatch, pieces, seed=2, sizes=(60, 200))
    assert sum(f.type == "ip-address" for found in hinted for f in found) > 100


def found_with_and_without_hyperscan(monkeypatch, pieces, seed, sizes):
    """The findings in 300 random texts of `pieces` (a number of pieces in `sizes`), checked
    to be the same where Hyperscan's hints choose the windows and where it is not used."""
    rng = random.Random(seed)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(*sizes))) for _ in range(300)]
    hinted = [scan(t, BUILTIN) for t in texts]
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert hinted == [scan(t, BUILTIN) for t in texts]
    return hinted


def test_the_lookaheads_said_first_change_no_match_of_dates_and_streets():
    from proxy.redact import personal_detectors as pd

    regexes = {d.id: d.regex for d in BUILTIN}
    date, street = regexes["date-of-birth"], regexes["street-address"]
    prefilter = f"(?=[0-9]|(?i:[{pd._MONTH_STARTS}]))"
    date_before = re.compile(date.pattern.replace(prefilter, "", 1), date.flags)
    street_before = re.compile(street.pattern.split(")", 1)[1], street.flags)
    assert date_before.pattern != date.pattern and street_before.pattern != street.pattern
    months = re.findall(r"[^\W\d_]{3,}", pd._MONTH)  # whole names and their tails ("uary")
    rng = random.Random(3)
    pieces = [*months, *(m.upper() for m in months), *(m.title() for m in months), " ", ", ",
              "5", "12", "1990", "-", ".", "/", "x", "Baker Street", "221B", "Hauptstraße",
              "address: ", "10 rue de Rivoli", "芝大門", "28丁目", "\n"]  # fmt: skip
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        for new, old in ((date, date_before), (street, street_before)):
            assert [m.span() for m in new.finditer(text)] == [
                m.span() for m in old.finditer(text)
            ], text


def test_markers_found_by_halves_are_those_the_whole_pattern_finds():
    marker = re.compile(r"\[REDACTED[^\]\n]{0,40}\]|<[A-Z][A-Z0-9_]*_[0-9]+>")
    pieces = ["[REDACTED", "[REDACTED:x]", "]", "<", "<AWS_KEY_1>", "<A_1>", "A", "_", "1", ">",
              "\n", "x" * 50, "[", " "]  # fmt: skip
    for text in _random_texts(pieces, 20000, 4):
        assert SharedText(text, None).markers == [m.span() for m in marker.finditer(text)], text


def test_windows_are_merged_as_one_at_a_time_merged_them():
    def one_at_a_time(spans, window, n):
        before, after = window or (0, 0)
        merged = []
        for start, end in spans:
            a, b = max(0, start - before), n if after is None else min(n, end + after)
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    rng = random.Random(5)
    windows = [None, (0, 0), (3, 3), (34, 34), (0, 80), (60, 2000), (39, 2), (100, None)]
    for _ in range(20000):
        n = rng.randint(0, 60)
        starts = [rng.randint(0, n) for _ in range(rng.randint(0, 6))]
        spans = sorted((a, min(n, a + rng.randint(0, 8))) for a in starts)
        window = rng.choice(windows)
        assert detectors._merge(spans, window, n) == one_at_a_time(spans, window, n)


@pytest.mark.parametrize("unit", ["1.2.3.4,", "8.8.8.8 ", "AB123456C ", "2001:db8::1 1.2.3.4 "])
def test_a_text_dense_with_hints_is_read_whole_and_found_the_same(unit, monkeypatch):
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: hinted detectors run over the whole text")
    text = unit * (4096 // len(unit)) + " 203.0.113.9 end"
    shared = detectors.KeywordIndex.of(BUILTIN).shared(text)
    assert not shared.hinted  # past one hint in HINTS_EVERY characters
    hinted = scan(text, BUILTIN)
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert hinted == scan(text, BUILTIN)


@pytest.mark.parametrize("repeat", [1, 20])  # below and above KeywordIndex.MIN_TEXT
def test_a_lone_surrogate_is_scanned_as_any_character(repeat, monkeypatch):
    text = "call me \ud800 on 020 7946 0958, dob 1990-01-02 " * repeat  # JSON's "\ud800"
    found = scan(text, BUILTIN)
    assert sum(f.type == "phone" for f in found) == repeat
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert scan(text, BUILTIN) == found


def test_a_scan_keeps_no_prompt_in_the_caches_it_fills():
    """The caches of the personal-data checks (a text lower-cased, its rows, its numbers)
    are emptied when the scan ends: the prompt is not kept in memory past it."""
    caches = [f for f in vars(personal_checks).values() if hasattr(f, "cache_info")]
    text = "id,name,phone\n1,Anna,020 7946 0958\ncall me in London on 020 7946 0958 today"
    start = text.rindex("020")
    personal_checks.phone_in_context(text, start, start + 13)  # outside a scan: kept
    assert any(c.cache_info().currsize for c in caches)  # the control: they hold something
    assert scan(text, BUILTIN)
    assert [c.cache_info().currsize for c in caches] == [0] * len(caches)


def test_cues_found_without_lower_casing_the_text_are_those_of_the_lower_cased_text():
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: every label is read")
    cues = personal_checks._PHONE_CUES
    pieces = ["tel", "TEL", "Tél", "TÉL", "MÓVIL", "móvil", "電話", "phone", "İ", "\u212a",
              "é", "x", " ", "\n", "?", "call me", "CALL_ME"]  # fmt: skip
    words = ["tel", "tél", "móvil", "電話", "phone", "call me", "call_me"]
    found = 0
    for text in _random_texts(pieces, 2000, 6):
        folded = text.lower()
        starts = cues.starts(text)
        personal_checks._cue_starts.cache_clear()
        if len(folded) != len(text):
            assert starts is None
            continue
        expected = sorted(m.start() for w in words for m in re.finditer(re.escape(w), folded))
        assert starts == expected, text
        found += any(not folded[s].isascii() for s in starts)
    assert found > 100  # the control: the pieces that are not ASCII are found too


def test_what_lower_cases_to_a_cue_that_is_not_ascii_is_looked_for():
    for cues in (personal_checks._PHONE_CUES, personal_checks._REGION_CUES):
        others = {c for c in "".join(cues.wide_chars or ()) if c == c.lower()}
        assert others  # (é, ü, 電...)
        lowering = {chr(i) for i in range(0x80, 0x110000) if set(chr(i).lower()) & others}
        assert lowering <= set(cues.wide_chars)


def test_the_runs_es_dni_skips_hold_no_dni():
    dni = next(d for d in BUILTIN if d.id == "es-dni")
    every_run = dataclasses.replace(dni, run_then=None)
    pieces = ["12345678Z", "X1234567L", "Y-1234567-T", "12345678-Z", "1234567", "123", "-", ".",
              " ", "Z", "T", "X", "a", "9", "2026-10-13T", "\n"]  # fmt: skip
    short = _random_texts(pieces, 3000, 7)
    texts = [*short, *("".join(short[i : i + 10]) for i in range(0, 3000, 10))]  # (Hyperscan's)
    found = [scan(t, (dni,)) for t in texts]
    assert found == [scan(t, (every_run,)) for t in texts]
    assert sum(map(len, found)) > 500  # the control: DNIs and NIEs are found


def test_the_runs_the_phone_skips_hold_no_phone_number():
    phone = next(d for d in BUILTIN if d.id == "phone")
    skip = personal_checks.phone_run_unmatched
    assert phone.run_skip is skip
    skipped = []
    counted = dataclasses.replace(
        phone, run_skip=lambda *run: skip(*run) and skipped.append(run) is None
    )
    every_run = dataclasses.replace(phone, run_skip=None)
    pieces = ["+45 3212 3456", "+1 415 555 0132", "(415) 555-0132", "2024-01-15", "12345678",
              "1234-5678", "15.01.2024", "4155", "5501", "32", "T", "x", "ext. ", "e", ":", "_",
              "a", " ", "-", ".", ",", "/", "(", "+", "+45 ", "\n", "phone: "]  # fmt: skip
    short = _random_texts(pieces, 3000, 8)
    texts = [*short, *("".join(short[i : i + 10]) for i in range(0, 3000, 10))]  # (Hyperscan's)
    found = [scan(t, (counted,)) for t in texts]
    assert found == [scan(t, (every_run,)) for t in texts]
    assert sum(map(len, found)) > 500  # the controls: phone numbers are found, runs skipped
    assert len(skipped) > 500


def test_the_iban_pattern_starting_with_a_letter_finds_what_the_word_boundary_found():
    iban = next(d for d in BUILTIN if d.id == "iban").regex
    before = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.ASCII)
    pieces = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "GB", "82", "WEST", "A",
              "a", "_", "1", " ", "é", "\n"]  # fmt: skip
    for text in _random_texts(pieces, 5000, 8):
        for start in (0, 1, 5):
            assert [m.span() for m in iban.finditer(text, start)] == [
                m.span() for m in before.finditer(text, start)
            ], text


def test_keywords_read_with_what_follows_them_find_what_the_keywords_alone_find(monkeypatch):
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: keywords are found alone")
    followed = [d for d in BUILTIN if d.follows]
    assert followed and all(d.anchored for d in followed)  # (only starts are pruned)
    pieces = [*(k for d in followed for k, _ in d.follows), *(k.upper() for d in followed
              for k, _ in d.follows), " ", "=", ":", "：", '"', "'", "-", "_", ".", "/", "+",
              "\n", "\t", "a", "Z", "7", "é", "s", "b", "is ", "string", "Value", "api_",
              "A1b2C3d4E5f6G7h8I9j0K1l2", "0123456789abcdef" * 2, "q8Zr2LmV0xWk5TnP7sHd",
              "Name: Jane Doe\n", '"name": "Jane Doe",', "Name - Jane Doe\n",
              "word"]  # fmt: skip
    rng = random.Random(6)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(60, 160))) for _ in range(400)]
    texts = [t for t in texts if len(t) >= detectors.KeywordIndex.MIN_TEXT]
    indexed = [scan(t, BUILTIN) for t in texts]
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert indexed == [scan(t, BUILTIN) for t in texts]
    kinds = {f.type for found in indexed for f in found}
    assert {"generic-secret", "named-credential", "person-name", "twilio-key"} <= kinds, kinds


def test_a_keyword_not_followed_as_a_match_needs_it_is_no_start():
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: keywords are found alone")
    text = "-" * 300 + "\n$ mysqldump --password hunter2hunter2 --names x\n"
    position = next(i for i, d in enumerate(BUILTIN) if d.id == "cli-secret")
    shared = detectors.KeywordIndex.of(BUILTIN).shared(text)
    assert shared.starts(BUILTIN[position], position) == [
        text.index("mysqldump"),
        text.index("--password"),
        text.index("--names"),
    ]  # not the 299 of the dashes
    assert [text[f.start : f.end] for f in scan(text, BUILTIN)] == ["hunter2hunter2"]


def test_key_names_looked_back_at_by_length_match_as_one_look_back_each_did():
    sd = secret_detectors
    each_qualifier = "(?:" + "|".join(f"(?<={q}{sep})" for q in sd._QUALIFIERS
                                      for sep in ("", "_", "-", ".")) + ")"  # fmt: skip
    each_word = "".join(f"(?<!(?i:{w}{sep}))" for w in sd._NOT_SECRET_KEY_WORDS
                        for sep in ("", "_", "-", r"\.", " "))  # fmt: skip
    regexes = {d.id: d.regex for d in BUILTIN}
    pairs = []
    for kind in ("generic-secret", "named-credential"):
        new = regexes[kind]
        old = new.pattern.replace(sd._AFTER_QUALIFIER, each_qualifier)
        old = old.replace(sd._NOT_SECRET_KEYS, each_word).replace("(?=key)", "", 1)
        old = old.replace("(?=token)", "", 1)
        assert old != new.pattern
        pairs.append((new, re.compile(old, new.flags)))
    pieces = ["api", "API", "user", "access", "cache", "Cache", "sort", "hot", "page", "next",
              "key", "Key", "KEY", "token", "Token", "secret", "_", "-", ".", " ", "?", "/", "\n",
              "=", ": ", '"', "q8Zr2LmV0xWk5TnP7sHd", "x", "s", "2"]  # fmt: skip
    for text in _random_texts(pieces, 2500, 7):
        for new, old in pairs:
            for i in range(len(text)):
                a, b = new.match(text, i), old.match(text, i)
                assert (a and a.span(1)) == (b and b.span(1)), (text, i)


def test_a_detector_with_keywords_reads_only_the_windows_its_hint_ends_in(monkeypatch):
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: every window is read")
    position = next(i for i, d in enumerate(BUILTIN) if d.id == "street-address")
    street = BUILTIN[position]
    filler = "Please read the docs. " + "one two three four five six seven eight. " * 6
    text = filler * 3 + "Ship to: 221B Baker Street\n" + filler * 3
    shared = detectors.KeywordIndex.of(BUILTIN).shared(text)
    windows = shared.windows(street, position)
    assert len(windows) == 1 and windows[0][0] <= text.index("221B") < windows[0][1]
    every = SharedText(text, shared.keyword_hits).windows(street, position)  # (no hint ends)
    assert len(every) == 6  # around each "Pl" of "Please" (one with the street)
    found = scan(text, BUILTIN)
    assert [text[f.start : f.end] for f in found] == ["221B Baker Street"]
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert scan(text, BUILTIN) == found


def test_streets_found_in_the_windows_a_hint_ends_in_are_those_found_in_all(monkeypatch):
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: every window is read")
    pieces = ["221B", "12", "5", "1990", " ", "  ", "\n", ", ", ": ", "-", '"', "Baker", "High",
              "Street", "St", "Road", "Place", "Pl", "Dr", "Lane", "Hauptstraße", "Straße",
              "Keizersgracht", "weg", "Ring", "rue", "rue de la", "Paix", "avenue", "bis",
              "Calle", "Mayor", "Via", "Roma", "Praça", "nº", "芝大門", "28丁目", "丁目",
              "address", "Address", "ship to", "IP", "é", "Müller", "x", "true",
              "Please", "Envie para", "Envíelo a 5 Mayor", "Spedite a: Roma 5",
              "Stuur het naar 12 Dorp", "Dorpsboulevard 12", "Stationsbaan",
              "wohne in der"]  # fmt: skip
    indexed = found_with_and_without_hyperscan(monkeypatch, pieces, seed=8, sizes=(80, 200))
    assert sum(f.type == "street-address" for found in indexed for f in found) > 300


def test_a_time_of_day_is_no_ip_address_without_parsing_it(monkeypatch):
    import ipaddress

    def parsed(text):
        try:
            return ipaddress.ip_address(text).is_global
        except ValueError:
            return False

    rng = random.Random(9)
    candidates = ["23:25:01", "2:3::", "2001:4860:4860::8888", "2606:4700:4700:0:0:0:0:1111",
                  "2001:db8::1", "3a:b:c:d:e:f:1:2", "2:3:4:5:6:7:8"]  # fmt: skip
    candidates += ["".join(rng.choice("0123abcf:") for _ in range(rng.randint(2, 30)))
                   for _ in range(20000)]  # fmt: skip
    verdicts = [personal_checks.public_ip(c) for c in candidates]
    assert verdicts == [parsed(c) for c in candidates]
    assert verdicts[2] and verdicts[3] and not verdicts[0]
    parse, calls = ipaddress.ip_address, []
    monkeypatch.setattr(ipaddress, "ip_address", lambda t: calls.append(t) or parse(t))
    assert not personal_checks.public_ip("23:25:01") and calls == []
    assert personal_checks.public_ip("2001:4860:4860::8888") and calls  # the control


def test_a_span_an_earlier_detector_found_is_not_validated_again_and_found_the_same(
    monkeypatch,
):
    checked = []

    def valid(value):
        checked.append(value)
        return True

    first = detectors.detector("first", "custom", r"key=(\w+)", keywords=("key=",), span=1,
                               anchored=True)  # fmt: skip
    second = detectors.detector("second", "custom", r"key=(\w+)", keywords=("key=",), span=1,
                                validate=valid, anchored=True)  # fmt: skip
    text = "key=abc and key=q8Zr2LmV0xWk5TnP7sHd"
    both = scan(text, (first, second))
    assert [f.type for f in both] == ["first", "first"] and checked == []
    assert [f.type for f in scan(text, (second,))] == ["second", "second"]
    assert checked == ["abc", "q8Zr2LmV0xWk5TnP7sHd"]  # the control
    # and the built-in detectors find the same as when every span is validated
    pieces = ["api_key=", "secret: ", "token ", "q8Zr2LmV0xWk5TnP7sHd", "sk_live_",
              "4eC39HqLyjWDarjtT1zdp7dc", " ", "\n", '"', "password=", "x"]  # fmt: skip
    texts = [*TEXTS, *_random_texts(pieces, 400, 10)]
    found = [scan(t, BUILTIN) for t in texts]
    anchored_spans = detectors._anchored_spans
    monkeypatch.setattr(detectors, "_anchored_spans",
                        lambda d, shared, starts, memo, until, taken:
                        anchored_spans(d, shared, starts, memo, until))  # fmt: skip
    assert found == [scan(t, BUILTIN) for t in texts]


def test_a_timestamp_s_time_is_no_hint_of_an_ip_address(monkeypatch):
    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed: hinted detectors run over the whole text")
    position = next(i for i, d in enumerate(BUILTIN) if d.id == "ip-address")
    log = "2026-05-11T20:14:44.123Z INFO request served\n" * 8
    for text, hinted in ((log + "from 203.0.113.9", 1), (log.replace("T", " "), 8 * 3)):
        hits = detectors.KeywordIndex.of(BUILTIN).shared(text).keyword_hits.get(position, [])
        assert len(hits) == hinted  # (the control: a time after a space may be an address)
        found = scan(text, BUILTIN)
        monkeypatch.setattr(detectors, "hyperscan", None)
        assert scan(text, BUILTIN) == found
        monkeypatch.undo()


def test_a_row_under_a_line_of_fewer_cells_than_its_own_reads_no_heading(monkeypatch):
    """The phone's label is read in a table's heading only when the last cue above the row
    lies on a line of as many cells as the row or more: the same findings without the
    shortcut, on tables under prose, under headings with and without a phone word."""
    phone = next(d for d in BUILTIN if d.id == "phone")
    lines = ["name,phone,city", "name,mobile", "tell me about it", "a,b,c,tel,d", "id,ref",
             "Anna,03012345678,Berlin", "Bo,015123456789", "x,y,030123456,z", "Anna,Berlin,tel",
             '"a,phone",03012345678', "hotel,ok", "", "03012345678"]  # fmt: skip
    rng = random.Random(11)
    texts = ["\n".join(rng.choice(lines) for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    texts += ["tel\n" + "x" * 3990 + "\nname,tel\nAnna,03012345678"]  # (a heading cut off)
    with_shortcut = [scan(t, (phone,)) for t in texts]
    monkeypatch.setattr(personal_checks, "_may_head_the_column", lambda *a: True)
    assert with_shortcut == [scan(t, (phone,)) for t in texts]
    assert sum(map(len, with_shortcut)) > 300  # the control: numbers under a heading are found
