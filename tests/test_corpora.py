"""gen_utils.corpora: Tiny Shakespeare and Multi30k (real files and tiny synthetic ones)."""

from __future__ import annotations

import gzip
import urllib.error

import pytest
from _helpers import md5_bytes, real_file, register_file

import gen_utils as gu
from gen_utils import corpora, data

FIRST_TRAIN_DE = "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
FIRST_TRAIN_EN = "Two young, White males are outside near many bushes."
FIRST_TRAIN_FR = "Deux jeunes hommes blancs sont dehors près de buissons."


def _offline(monkeypatch):
    def urlopen(url, timeout=None):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)


# --- Tiny Shakespeare -----------------------------------------------------------------------

def test_real_shakespeare():
    real_file("tinyshakespeare/input.txt")
    text = gu.load_shakespeare()
    assert len(text) == 1_115_394
    assert len(set(text)) == 65
    assert text.startswith("First Citizen:\n")
    assert gu.load_shakespeare() is text  # read once per process


def test_real_shakespeare_split_is_nanogpts():
    real_file("tinyshakespeare/input.txt")
    text = gu.load_shakespeare()
    train, val = gu.shakespeare_split()
    n = int(len(text) * 0.9)
    assert (len(train), len(val)) == (n, len(text) - n) == (1_003_854, 111_540)
    assert train + val == text


def test_shakespeare_split_of_given_text():
    assert gu.shakespeare_split("abcdefghij") == ("abcdefghi", "j")
    assert gu.shakespeare_split("abcdefghij", train_fraction=0.25) == ("ab", "cdefghij")
    assert gu.shakespeare_split("", 0.9) == ("", "")


def test_shakespeare_missing_names_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    _offline(monkeypatch)
    with pytest.raises(gu.DatasetNotFoundError) as info:
        gu.load_shakespeare()
    assert "tinyshakespeare" in str(info.value) and "GEN_UTILS_DATA" in str(info.value)


# --- Multi30k: real files -------------------------------------------------------------------

def _need_multi30k(split):
    stem = corpora.MULTI30K_SPLITS[split]
    for lang in corpora.MULTI30K_LANGS:
        real_file(f"multi30k/{stem}.{lang}.gz")


@pytest.mark.parametrize(("split", "n"), [("train", 29000), ("val", 1014), ("test", 1000)])
def test_real_multi30k_sizes(split, n):
    _need_multi30k(split)
    pairs = gu.load_multi30k(split)
    assert len(pairs) == n
    assert all(isinstance(de, str) and isinstance(en, str) for de, en in pairs)
    assert all(de and en for de, en in pairs)
    assert not any(s.endswith(("\n", "\r")) for pair in pairs for s in pair)


def test_real_multi30k_first_train_pair_and_directions():
    _need_multi30k("train")
    pairs = gu.load_multi30k()  # default: train, de -> en
    assert pairs[0] == (FIRST_TRAIN_DE, FIRST_TRAIN_EN)
    assert gu.load_multi30k("train", src="en", tgt="de")[0] == (FIRST_TRAIN_EN, FIRST_TRAIN_DE)
    assert gu.load_multi30k("train", src="fr", tgt="en")[0] == (FIRST_TRAIN_FR, FIRST_TRAIN_EN)
    reverse = gu.load_multi30k("train", src="en", tgt="de")
    assert [(b, a) for a, b in reverse] == pairs


# --- Multi30k: arguments and synthetic files ------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"split": "dev"}, "'dev'"), ({"split": "test_2016_flickr"}, "'test_2016_flickr'"),
     ({"src": "es"}, "'es'"), ({"tgt": "cs"}, "'cs'"), ({"src": "de", "tgt": "de"}, "'de'")],
)
def test_multi30k_argument_errors(kwargs, bad, monkeypatch):
    _offline(monkeypatch)  # rejected before any file is looked for
    with pytest.raises(ValueError) as info:
        gu.load_multi30k(**kwargs)
    assert bad in str(info.value)


def _write_lines(root, monkeypatch, name, lines):
    blob = gzip.compress(("".join(line + "\n" for line in lines)).encode("utf-8"), mtime=0)
    path = root / "multi30k" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    register_file(monkeypatch, "multi30k", name, f"multi30k/{name}", md5_bytes(blob))


def test_synthetic_multi30k_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    _write_lines(tmp_path, monkeypatch, "val.de.gz", ["Ein Hund läuft.", "Zwei Katzen."])
    _write_lines(tmp_path, monkeypatch, "val.en.gz", ["A dog runs.", "Two cats."])
    assert gu.load_multi30k("val") == [("Ein Hund läuft.", "A dog runs."),
                                       ("Zwei Katzen.", "Two cats.")]


def test_synthetic_multi30k_misaligned_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    _write_lines(tmp_path, monkeypatch, "test_2016_flickr.de.gz", ["Eins.", "Zwei.", "Drei."])
    _write_lines(tmp_path, monkeypatch, "test_2016_flickr.en.gz", ["One.", "Two."])
    with pytest.raises(ValueError, match="3 de lines but 2 en lines"):
        gu.load_multi30k("test")
