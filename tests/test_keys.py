"""The one content key: deterministic, framed part by part, of the length asked for."""

from __future__ import annotations

from tslrec.keys import content_key, file_key


def test_content_keys_are_deterministic_framed_and_sized() -> None:
    parts = ({"b": 1, "a": [1, 2]}, b"\x00\x01", "text")
    assert content_key(*parts) == content_key({"a": [1, 2], "b": 1}, b"\x00\x01", "text")
    assert len(content_key(*parts)) == 20 and len(content_key(*parts, length=12)) == 12
    assert content_key(*parts, length=12) == content_key(*parts)[:12]
    assert content_key(b"ab", b"c") != content_key(b"a", b"bc")  # parts are framed
    assert content_key(b"1") != content_key("1") != content_key(1)


def test_a_file_key_is_the_digest_of_its_bytes(tmp_path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 3_000_000)  # read in blocks
    (tmp_path / "b").write_bytes(b"x" * 3_000_000)
    (tmp_path / "c").write_bytes(b"x" * 2_999_999 + b"y")
    assert file_key(tmp_path / "a") == file_key(tmp_path / "b") != file_key(tmp_path / "c")
    assert len(file_key(tmp_path / "a")) == 64
