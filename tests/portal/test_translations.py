"""The gettext catalogues under locale/: complete, not fuzzy, placeholders intact, .mo files in step.

The .po files are parsed here with a small parser of our own (no polib); the committed .mo files are
read with the standard library's ``gettext`` so a machine without GNU gettext still checks them.
"""

from __future__ import annotations

import ast
import gettext
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.utils import translation

from stores.models import Staff, Store

LOCALE_DIR = Path(__file__).resolve().parents[2] / "locale"
LOCALES = {"en": 2, "zh_Hans": 1}  # locale directory -> nplurals

# %(name)s, %(n)d, %(x).2f ... and bare %s / %d; "%%" is a literal percent sign.
PLACEHOLDER = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)


@dataclass
class Entry:
    line: int
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # index 0 for a singular entry's msgstr
    flags: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"line {self.line}: {self.msgid!r}"


def po_parse(path: Path) -> list[Entry]:
    """Entries of a .po file, the header (msgid "") included; obsolete (#~) entries are skipped."""
    entries: list[Entry] = []
    entry: Entry | None = None
    key: tuple[str, int] | None = None
    pending_flags: set[str] = set()

    def close() -> None:
        nonlocal entry, key
        if entry is not None:
            entries.append(entry)
        entry, key = None, None

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            close()
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#"):
            if entry is not None and key is not None and key[0] == "msgstr":
                close()  # a comment after the msgstr starts the next entry
            if line.startswith("#,"):
                pending_flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
            continue
        match = re.match(r'(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$', line)
        if match:
            keyword, index, text = match.group(1), int(match.group(2) or 0), match.group(3)
            if keyword in ("msgctxt", "msgid") and (entry is None or key[0] == "msgstr"):
                close()
                entry = Entry(line=number, flags=pending_flags)
                pending_flags = set()
            assert entry is not None, f"{path}:{number}: {keyword} outside an entry"
            key = (keyword, index)
        elif line.startswith('"') and entry is not None and key is not None:
            text = line
        else:
            raise AssertionError(f"{path}:{number}: cannot parse {raw!r}")
        value = ast.literal_eval(text)
        keyword, index = key
        if keyword == "msgstr":
            entry.msgstr[index] = entry.msgstr.get(index, "") + value
        else:
            setattr(entry, keyword, (getattr(entry, keyword) or "") + value)
    close()
    return entries


def po_header(entries: list[Entry]) -> tuple[Entry, dict[str, str]]:
    header = entries[0]
    assert header.msgid == "" and header.msgctxt is None, "the first entry must be the header"
    fields = dict(line.split(":", 1) for line in header.msgstr[0].splitlines() if ":" in line)
    return header, {name.strip(): value.strip() for name, value in fields.items()}


def placeholders(text: str) -> Counter:
    return Counter((m["name"], m["conv"]) for m in PLACEHOLDER.finditer(text) if m["conv"] != "%")


def catalogue(locale: str) -> tuple[Path, list[Entry]]:
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "django.po"
    return path, po_parse(path)


def test_every_configured_language_has_a_catalogue():
    for code, _name in settings.LANGUAGES:
        assert translation.to_locale(code) in LOCALES, code
    for locale in LOCALES:
        assert (LOCALE_DIR / locale / "LC_MESSAGES" / "django.po").is_file(), locale


@pytest.mark.parametrize("locale", LOCALES)
def test_po_header(locale):
    _path, entries = catalogue(locale)
    header, fields = po_header(entries)
    assert "fuzzy" not in header.flags
    assert fields["Language"] == locale
    assert "charset=UTF-8" in fields["Content-Type"]
    nplurals = LOCALES[locale]
    expected = "nplurals=1; plural=0;" if nplurals == 1 else "nplurals=2; plural=(n != 1);"
    assert fields["Plural-Forms"] == expected


@pytest.mark.parametrize("locale", LOCALES)
def test_po_entries_are_complete_and_not_fuzzy(locale):
    path, entries = catalogue(locale)
    nplurals = LOCALES[locale]
    problems = []
    for entry in entries[1:]:
        if "fuzzy" in entry.flags:
            problems.append(f"{entry.label}: fuzzy")
        expected_forms = set(range(nplurals)) if entry.msgid_plural is not None else {0}
        if set(entry.msgstr) != expected_forms:
            problems.append(f"{entry.label}: msgstr forms {sorted(entry.msgstr)}, expected {sorted(expected_forms)}")
        if any(not text for text in entry.msgstr.values()) or not entry.msgstr:
            problems.append(f"{entry.label}: empty msgstr")
    assert len(entries) > 100, f"{path} looks truncated ({len(entries)} entries)"
    assert not problems, f"{path}:\n" + "\n".join(problems)


@pytest.mark.parametrize("locale", LOCALES)
def test_po_placeholders_match_msgid(locale):
    path, entries = catalogue(locale)
    problems = []
    for entry in entries[1:]:
        wanted = placeholders(entry.msgid)
        if entry.msgid_plural is not None and placeholders(entry.msgid_plural) != wanted:
            problems.append(f"{entry.label}: msgid_plural placeholders differ from msgid")
        if "python-format" not in entry.flags and not wanted:
            continue
        for index, text in sorted(entry.msgstr.items()):
            if text and placeholders(text) != wanted:
                problems.append(f"{entry.label}: msgstr[{index}] {text!r} has {dict(placeholders(text))}, "
                                f"msgid has {dict(wanted)}")
    assert not problems, f"{path}:\n" + "\n".join(problems)


def test_zh_hans_msgstr_repeats_msgid():
    _path, entries = catalogue("zh_Hans")
    differing = [entry.label for entry in entries[1:] if entry.msgstr.get(0) != entry.msgid]
    assert not differing, "\n".join(differing)


@pytest.mark.parametrize("locale", LOCALES)
def test_mo_matches_po(locale):
    """The committed .mo holds exactly the .po's translations (rerun compilemessages if this fails)."""
    path, entries = catalogue(locale)
    expected = {}
    for entry in entries[1:]:
        msgid = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            expected[msgid] = entry.msgstr[0]
        else:
            expected.update({(msgid, index): text for index, text in entry.msgstr.items()})
    with path.with_suffix(".mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    actual = {key: value for key, value in compiled._catalog.items() if key != ""}
    stale = sorted(str(key) for key in expected.keys() ^ actual.keys())
    stale += sorted(str(key) for key in expected.keys() & actual.keys() if expected[key] != actual[key])
    assert not stale, f"{path.with_suffix('.mo')} is out of date with {path.name}: {stale[:10]}"


def test_mo_known_translations():
    with (LOCALE_DIR / "en" / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        en = gettext.GNUTranslations(mo)
    assert en.gettext("门店") == "Store"
    assert en.gettext("企业微信") == "WeCom"
    assert en.ngettext("已关闭 %(n)d 家门店", "已关闭 %(n)d 家门店", 1) % {"n": 1} == "Closed 1 store"
    assert en.ngettext("已关闭 %(n)d 家门店", "已关闭 %(n)d 家门店", 3) % {"n": 3} == "Closed 3 stores"

    with (LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        zh = gettext.GNUTranslations(mo)
    assert zh.gettext("门店") == "门店"
    assert zh.ngettext("已关闭 %(n)d 家门店", "已关闭 %(n)d 家门店", 3) % {"n": 3} == "已关闭 3 家门店"


def test_django_serves_both_languages():
    moved = ("已调动 %(n)d 名员工", "已调动 %(n)d 名员工")
    with translation.override("en"):
        assert str(Store._meta.verbose_name) == "Store"
        assert str(Staff.Position.GUIDE.label) == "Shopping guide"
        assert str(admin.site.site_header) == "Xiaoer · Operations Portal"
        assert str(admin.site.index_title) == "Dashboard"
        assert translation.ngettext(*moved, 2) % {"n": 2} == "Moved 2 staff members"
    with translation.override("zh-hans"):
        assert str(Store._meta.verbose_name) == "门店"
        assert str(Staff.Position.GUIDE.label) == "导购"
        assert str(admin.site.site_header) == "店小二 · 运营平台"
        assert translation.ngettext(*moved, 2) % {"n": 2} == "已调动 2 名员工"
