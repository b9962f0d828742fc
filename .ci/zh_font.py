"""The Chinese edition's web font, served by the site itself so that Chinese shows on a machine without
CJK fonts: a subset of WenQuanYi Micro Hei (Apache 2.0; Debian's fonts-wqy-microhei) holding the 3755
level-1 hanzi of GB 2312, CJK punctuation, and every other character of the catalogs' translations.

    python .ci/zh_font.py write FONT.ttc    write book/_static/fonts/wqy-microhei-subset.woff from the font
                                            (apt-get download fonts-wqy-microhei; dpkg -x it)
    python .ci/zh_font.py check             fail, naming them, if the catalogs hold hanzi the font lacks
"""

import pathlib
import re
import sys

from babel.messages.pofile import read_po
from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = pathlib.Path(__file__).resolve().parent.parent
FONT = ROOT / "book" / "_static" / "fonts" / "wqy-microhei-subset.woff"
CATALOGS = ROOT / "book" / "locale" / "zh_CN"
WIDE = re.compile(r"[\u2e80-\u9fff\uff00-\uffef\u3000-\u303f]")


def catalog_characters() -> set[str]:
    found = set()
    for path in CATALOGS.rglob("*.po"):
        with path.open("rb") as f:
            for m in read_po(f):
                found |= set(WIDE.findall(m.string or "")) | set(
                    WIDE.findall(m.id or "")
                )
    return found


def level_one_hanzi() -> set[str]:
    chars = set()
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return chars


def write(source: str) -> None:
    chars = level_one_hanzi() | catalog_characters()
    chars |= {chr(c) for c in range(0x3000, 0x3040)} | {
        chr(c) for c in range(0xFF01, 0xFF5F)
    }
    options = subset.Options()
    options.flavor = "woff"
    options.font_number = 0
    options.layout_features = ["*"]
    font = subset.load_font(source, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(chars)))
    subsetter.subset(font)
    FONT.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(FONT), options)
    print(
        f"{FONT.relative_to(ROOT)}: {len(chars)} characters, {FONT.stat().st_size // 1024} KiB"
    )


def check() -> int:
    cmap = TTFont(FONT).getBestCmap()
    missing = sorted(c for c in catalog_characters() if ord(c) not in cmap)
    if missing:
        print(
            f"the web font lacks {len(missing)} characters of the translations: {''.join(missing[:40])}; "
            "rewrite it: python .ci/zh_font.py write wqy-microhei.ttc"
        )
        return 1
    print(
        f"the web font covers every character of the translations ({len(cmap)} in the font)"
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"] and len(sys.argv) == 3:
        write(sys.argv[2])
    elif sys.argv[1:] == ["check"]:
        sys.exit(check())
    else:
        sys.exit(__doc__)
