"""Path safety: decoding a request-target once, and keeping every path under the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside._fileserver.paths import Refused, Resolver, parse_target


@pytest.mark.parametrize(
    ("target", "segments", "slash", "query"),
    [
        (b"/", (), True, b""),
        (b"/a/b.txt", ("a", "b.txt"), False, b""),
        (b"/a/b/?x=1&y", ("a", "b"), True, b"x=1&y"),
        (b"/a%20b/%C3%A9t%C3%A9", ("a b", "été"), False, b""),
        (b"//etc/passwd", ("etc", "passwd"), False, b""),  # never absolute
        (b"/%2Fetc%2Fpasswd", ("etc", "passwd"), False, b""),
        (b"/./a/./b", ("a", "b"), False, b""),
        (b"/%252e%252e/x", ("%2e%2e", "x"), False, b""),  # decoded once: a literal name
        (b"/a#frag", ("a",), False, b""),
        (b"http://example.com/a/b?q", ("a", "b"), False, b"q"),
        (b"http://example.com", (), True, b""),
        (b"http://example.com?q", (), True, b"q"),
        (b"/C:/Windows", ("C:", "Windows"), False, b""),  # a drive means nothing: a name
    ],
)
def test_parse_target(target: bytes, segments: tuple[str, ...], slash: bool, query: bytes) -> None:
    parsed = parse_target(target)
    assert (parsed.segments, parsed.slash, parsed.query) == (segments, slash, query)


@pytest.mark.parametrize(
    "target",
    [
        b"/../etc/passwd",
        b"/a/../../etc/passwd",
        b"/%2e%2e/etc/passwd",
        b"/%2E%2E/etc/passwd",
        b"/a/%2e%2e",
        b"/..",
        b"/a%00.txt",
        b"/a%5c..%5cb",
        b"/C:%5CWindows",
        b"/a\\b",
        b"*",
        b"example.com/a",
    ],
)
def test_refused_targets(target: bytes) -> None:
    with pytest.raises(Refused) as info:
        parse_target(target)
    assert info.value.status == 400


def test_url_never_starts_with_two_slashes() -> None:
    assert parse_target(b"//evil.example/").url() == "/evil.example/"
    assert parse_target(b"/a b/c").url(slash=True) == "/a%20b/c/"
    assert parse_target(b"/").url(slash=True) == "/"
    assert parse_target(b"/x/%C3%A9/").display() == "/x/é/"


def test_non_utf8_names_round_trip() -> None:
    target = parse_target(b"/caf%E9")
    assert os.fsencode(target.segments[0]) == b"caf\xe9"
    assert target.url() == "/caf%E9"


def make_tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "f.txt").write_text("f")
    (root / ".git").mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (root / "inside-link").symlink_to(root / "dir" / "f.txt")
    (root / "outside-link").symlink_to(tmp_path / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path)
    return root


def test_resolver_refuses_links_out_of_the_root(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    resolver = Resolver(str(root), follow_symlinks=False, dotfiles=False)
    assert resolver.resolve(("dir", "f.txt")) == str(root / "dir" / "f.txt")
    assert resolver.resolve(("inside-link",)) == str(root / "dir" / "f.txt")
    assert resolver.resolve(("outside-link",)) is None
    assert resolver.resolve(("outside-dir", "secret.txt")) is None
    assert resolver.resolve(("outside-dir",)) is None
    assert resolver.resolve((".git",)) is None
    assert resolver.resolve(()) == str(root)


def test_resolver_follows_links_when_allowed(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    resolver = Resolver(str(root), follow_symlinks=True, dotfiles=True)
    assert resolver.resolve(("outside-link",)) == str(root / "outside-link")
    assert resolver.resolve((".git",)) == str(root / ".git")


def test_resolver_root_that_is_itself_a_link(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    resolver = Resolver(str(alias), follow_symlinks=False, dotfiles=False)
    assert resolver.resolve(("dir", "f.txt")) == str(root / "dir" / "f.txt")
    assert resolver.resolve(("outside-link",)) is None


def test_resolver_prefix_is_not_enough(tmp_path: Path) -> None:
    """A sibling directory whose name starts with the root's name is still outside."""
    root = make_tree(tmp_path)
    (tmp_path / "root-evil").mkdir()
    (tmp_path / "root-evil" / "x").write_text("x")
    (root / "sneaky").symlink_to(tmp_path / "root-evil" / "x")
    resolver = Resolver(str(root), follow_symlinks=False, dotfiles=False)
    assert resolver.resolve(("sneaky",)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40).map(lambda b: b"/" + bytes(c for c in b if 0x21 <= c <= 0x7E)))
def test_any_target_stays_under_the_root(target: bytes) -> None:
    """Whatever the target, it is refused or it names something under the root."""
    root = "/srv/www"
    try:
        parsed = parse_target(target)
    except Refused as refused:
        assert refused.status == 400
        return
    path = os.path.normpath(os.path.join(root, *parsed.segments))
    assert path == root or path.startswith(root + "/")
    assert not parsed.url().startswith("//")
