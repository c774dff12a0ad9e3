"""The file server's answers with the network left out: a Request in, a Reply out."""

from __future__ import annotations

import email
import errno
import os
import time
from pathlib import Path

import pytest

from portside._fileserver.paths import RESOLVE_TTL
from portside._fileserver.site import Reply, Site
from portside.proto.http import Headers, Request
from portside.services.fileserver import FileServer, FileServerOptions
from tests.fileserver.helpers import MEDIUM, SMALL


def site_for(root: Path, **options: object) -> Site:
    return Site(FileServerOptions(root=str(root), access_log=False, **options))  # type: ignore[arg-type]


def ask(site: Site, target: bytes, *fields: tuple[bytes, bytes], method: bytes = b"GET") -> Reply:
    reply = site.reply(Request(method, target, b"1.1", [(b"host", b"x"), *fields]))
    if reply.later is not None:  # the connection builds it in a thread
        reply = reply.later()
    if reply.fd >= 0:  # tests read file bodies themselves
        os.close(reply.fd)
    return reply


def header(reply: Reply, name: bytes) -> bytes | None:
    values = [v for n, v in reply.headers if n == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def body(reply: Reply, path: Path) -> bytes:
    """The bytes a reply's body would carry, reading file pieces from ``path``."""
    if not reply.pieces:
        return reply.content
    data = path.read_bytes()
    return b"".join(p if isinstance(p, bytes) else data[p[0] : p[0] + p[1]] for p in reply.pieces)


def test_small_file(tree: Path) -> None:
    reply = ask(site_for(tree), b"/small.txt")
    assert reply.status == 200 and reply.content == SMALL and reply.fd == -1
    assert header(reply, b"content-type") == b"text/plain; charset=utf-8"
    assert header(reply, b"content-length") == b"%d" % len(SMALL)
    assert header(reply, b"accept-ranges") == b"bytes"
    etag = header(reply, b"etag")
    assert etag is not None and etag.startswith(b'"') and etag.endswith(b'"')
    modified = header(reply, b"last-modified")
    assert modified is not None
    assert email.utils.parsedate_to_datetime(modified.decode()).timestamp() == int(
        (tree / "small.txt").stat().st_mtime
    )


def test_medium_file_is_a_file_body(tree: Path) -> None:
    site = site_for(tree)
    reply = site.reply(Request(b"GET", b"/medium.bin", b"1.1", [(b"host", b"x")]))
    try:
        assert reply.status == 200 and reply.fd >= 0 and reply.length == len(MEDIUM)
        assert reply.pieces == [(0, len(MEDIUM))]
    finally:
        os.close(reply.fd)


def test_head_has_headers_and_no_body(tree: Path) -> None:
    reply = ask(site_for(tree), b"/medium.bin", method=b"HEAD")
    assert reply.status == 200 and reply.fd == -1 and reply.content == b""
    assert header(reply, b"content-length") == b"%d" % len(MEDIUM)


def test_mime_types(tree: Path) -> None:
    site = site_for(tree)
    assert header(ask(site, b"/page.html"), b"content-type") == b"text/html; charset=utf-8"
    assert header(ask(site, b"/medium.bin"), b"content-type") == b"application/octet-stream"
    (tree / "x.tar.gz").write_bytes(b"not really")
    assert header(ask(site, b"/x.tar.gz"), b"content-type") == b"application/gzip"
    assert header(ask(site, b"/x.tar.gz"), b"content-encoding") is None


def test_index_and_redirect(tree: Path) -> None:
    site = site_for(tree)
    reply = ask(site, b"/with%20index/")
    assert reply.status == 200 and reply.content == b"<h1>index</h1>"
    redirect = ask(site, b"/with%20index?a=1")
    assert redirect.status == 301
    assert header(redirect, b"location") == b"/with%20index/?a=1"
    assert ask(site_for(tree, index=""), b"/with%20index/").status == 200  # a listing
    assert ask(site_for(tree, index="", listing=False), b"/with%20index/").status == 403


def test_no_open_redirect(tree: Path) -> None:
    (tree / "evil.example").mkdir()
    site = site_for(tree)
    for target in (b"//evil.example", b"///evil.example", b"/%2Fevil.example", b"/./evil.example"):
        reply = ask(site, target)
        assert reply.status == 301, target
        assert header(reply, b"location") == b"/evil.example/", target


def test_listing_is_sorted_escaped_and_hides_dotfiles(tree: Path) -> None:
    (tree / "listed" / "<img src=x onerror=alert(1)>.txt").write_text("x")
    (tree / "listed" / 'q"uote&amp.txt').write_text("x")
    reply = ask(site_for(tree), b"/listed/")
    assert reply.status == 200
    assert header(reply, b"content-type") == b"text/html; charset=utf-8"
    page = reply.content.decode()
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page
    assert 'href="%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt"' in page
    assert "q&quot;uote&amp;amp.txt" in page
    assert ".hidden" not in page
    names = [line.split('">', 1)[1].split("<", 1)[0] for line in page.split('<a href="')[1:]]
    assert names[0] == "../" and names[1] == "sub/"  # directories first
    assert names.index("A.txt") < names.index("b.txt")  # case-insensitive order
    assert "Index of /listed/" in page


def test_listing_of_the_root_has_no_parent_link(tree: Path) -> None:
    page = ask(site_for(tree), b"/").content.decode()
    assert 'href="../"' not in page
    assert "outside" not in page


def test_listing_skips_links_out_of_the_root(tree: Path) -> None:
    (tree / "listed" / "escape").symlink_to(tree.parent / "outside.txt")
    (tree / "listed" / "inner").symlink_to(tree / "small.txt")
    page = ask(site_for(tree), b"/listed/").content.decode()
    assert "escape" not in page and "inner" in page
    page = ask(site_for(tree, follow_symlinks=True), b"/listed/").content.decode()
    assert "escape" in page


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/missing", 404),
        (b"/small.txt/", 404),
        (b"/small.txt/x", 404),
        (b"/.env", 404),
        (b"/listed/.hidden", 404),
        (b"/../outside.txt", 400),
        (b"/%2e%2e/outside.txt", 400),
        (b"/small.txt%00.html", 400),
        (b"/listed%5c..%5c..%5coutside.txt", 400),
        (b"/" + b"a" * 300, 404),  # ENAMETOOLONG
    ],
)
def test_refusals(tree: Path, target: bytes, status: int) -> None:
    reply = ask(site_for(tree), target)
    assert reply.status == status
    assert header(reply, b"content-type") == b"text/html; charset=utf-8"
    assert b"<title>%d " % status in reply.content


def test_dotfiles_when_allowed(tree: Path) -> None:
    assert ask(site_for(tree, dotfiles=True), b"/.env").status == 200


def test_symlink_escape(tree: Path) -> None:
    (tree / "escape.txt").symlink_to(tree.parent / "outside.txt")
    assert ask(site_for(tree), b"/escape.txt").status == 404
    followed = ask(site_for(tree, follow_symlinks=True), b"/escape.txt")
    assert followed.status == 200 and followed.content == b"outside the root"


def test_special_files_are_not_served(tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    assert ask(site_for(tree), b"/fifo").status == 404


@pytest.mark.parametrize(
    ("error", "status"), [(errno.EACCES, 403), (errno.ENOENT, 404), (errno.EIO, 500)]
)
def test_stat_errors(tree: Path, monkeypatch: pytest.MonkeyPatch, error: int, status: int) -> None:
    real_stat = os.stat

    def failing_stat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith("small.txt"):
            raise OSError(error, os.strerror(error), path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", failing_stat)
    assert ask(site_for(tree), b"/small.txt").status == status


@pytest.mark.parametrize(("method", "status"), [(b"POST", 405), (b"DELETE", 405), (b"BREW", 501)])
def test_methods(tree: Path, method: bytes, status: int) -> None:
    reply = ask(site_for(tree), b"/small.txt", method=method)
    assert reply.status == status and header(reply, b"allow") == b"GET, HEAD"


def conditional(tree: Path, *fields: tuple[bytes, bytes], method: bytes = b"GET") -> Reply:
    return ask(site_for(tree), b"/small.txt", *fields, method=method)


def test_conditional_requests(tree: Path) -> None:
    first = conditional(tree)
    etag, modified = header(first, b"etag"), header(first, b"last-modified")
    assert etag is not None and modified is not None
    not_modified = conditional(tree, (b"if-none-match", etag))
    assert not_modified.status == 304 and not_modified.content == b""
    assert header(not_modified, b"etag") == etag
    assert header(not_modified, b"content-length") is None
    assert conditional(tree, (b"if-modified-since", modified)).status == 304
    assert conditional(tree, (b"if-none-match", b'"stale"')).status == 200
    assert conditional(tree, (b"if-match", b'"stale"')).status == 412
    assert conditional(tree, (b"if-match", etag)).status == 200
    old = b"Sat, 01 Jan 2000 00:00:00 GMT"
    assert conditional(tree, (b"if-unmodified-since", old)).status == 412
    assert conditional(tree, (b"if-none-match", etag), method=b"HEAD").status == 304


def test_single_range(tree: Path) -> None:
    reply = ask(site_for(tree), b"/small.txt", (b"range", b"bytes=0-4"))
    assert reply.status == 206 and reply.content == SMALL[:5]
    assert header(reply, b"content-range") == b"bytes 0-4/%d" % len(SMALL)
    assert header(reply, b"content-length") == b"5"
    tail = ask(site_for(tree), b"/medium.bin", (b"range", b"bytes=-10"))
    assert tail.status == 206 and body(tail, tree / "medium.bin") == MEDIUM[-10:]


def test_head_ignores_range(tree: Path) -> None:
    reply = ask(site_for(tree), b"/small.txt", (b"range", b"bytes=0-4"), method=b"HEAD")
    assert reply.status == 200


@pytest.mark.parametrize("target", [b"/small.txt", b"/medium.bin"])
def test_multiple_ranges(tree: Path, target: bytes) -> None:
    path = tree / target.decode()[1:]
    data = path.read_bytes()
    reply = ask(site_for(tree), target, (b"range", b"bytes=0-1,-3"))
    assert reply.status == 206
    content_type = header(reply, b"content-type")
    assert content_type is not None and content_type.startswith(b"multipart/byteranges; boundary=")
    payload = body(reply, path)
    assert header(reply, b"content-length") == b"%d" % len(payload)
    message = email.message_from_bytes(b"Content-Type: " + content_type + b"\r\n\r\n" + payload)
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 2
    assert parts[0]["content-range"] == f"bytes 0-1/{len(data)}"
    assert parts[0].get_payload(decode=True) == data[:2]
    assert parts[1]["content-range"] == f"bytes {len(data) - 3}-{len(data) - 1}/{len(data)}"
    assert parts[1].get_payload(decode=True) == data[-3:]


def test_unsatisfiable_range(tree: Path) -> None:
    reply = ask(site_for(tree), b"/small.txt", (b"range", b"bytes=500-"))
    assert reply.status == 416
    assert header(reply, b"content-range") == b"bytes */%d" % len(SMALL)


def test_if_range(tree: Path) -> None:
    etag = header(ask(site_for(tree), b"/small.txt"), b"etag")
    assert etag is not None
    fresh = ask(site_for(tree), b"/small.txt", (b"range", b"bytes=0-1"), (b"if-range", etag))
    assert fresh.status == 206
    stale = ask(site_for(tree), b"/small.txt", (b"range", b"bytes=0-1"), (b"if-range", b'"old"'))
    assert stale.status == 200 and stale.content == SMALL


def test_precompressed_siblings(tree: Path) -> None:
    site = site_for(tree)

    def get(*fields: tuple[bytes, bytes]) -> Reply:
        return ask(site, b"/app.js", *fields)

    plain = get()
    assert plain.content.startswith(b"console.log") and header(plain, b"content-encoding") is None
    assert header(plain, b"vary") == b"accept-encoding"
    brotli = get((b"accept-encoding", b"gzip, deflate, br"))
    assert brotli.content == b"brotli bytes" and header(brotli, b"content-encoding") == b"br"
    assert header(brotli, b"content-type") == header(plain, b"content-type")
    assert header(brotli, b"etag") not in (header(plain, b"etag"), None)
    gzip = get((b"accept-encoding", b"gzip"))
    assert gzip.content == b"gzip bytes" and header(gzip, b"content-encoding") == b"gzip"
    assert get((b"accept-encoding", b"br;q=0, gzip;q=0")).content == plain.content
    assert get((b"accept-encoding", b"*")).content == b"brotli bytes"  # any coding: ours
    assert get((b"accept-encoding", b"*;q=0.5, br;q=0")).content == b"gzip bytes"
    assert get((b"accept-encoding", b"br;q=0.2, gzip;q=0.8")).content == b"gzip bytes"
    assert get((b"accept-encoding", b"x-gzip")).content == b"gzip bytes"
    assert get((b"accept-encoding", b"*;q=0")).content == plain.content
    assert get((b"accept-encoding", b"identity")).content == plain.content
    assert header(ask(site, b"/small.txt"), b"vary") is None  # nothing to vary on
    off = ask(site_for(tree, precompressed=False), b"/app.js", (b"accept-encoding", b"br"))
    assert off.content == plain.content and header(off, b"vary") is None


def test_sibling_that_escapes_is_ignored(tree: Path) -> None:
    (tree / "small.txt.gz").symlink_to(tree.parent / "outside.txt")
    reply = ask(site_for(tree), b"/small.txt", (b"accept-encoding", b"gzip"))
    assert reply.content == SMALL and header(reply, b"vary") is None


def test_changed_file_gets_new_validators(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File facts are reused for RESOLVE_TTL; after it a changed file is served anew."""
    site = site_for(tree)
    first = ask(site, b"/small.txt")
    path = tree / "small.txt"
    path.write_bytes(b"changed, and longer than before\n")
    assert ask(site, b"/small.txt").content == SMALL  # within the second: as it was
    later = time.monotonic() + RESOLVE_TTL + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    second = ask(site, b"/small.txt")
    assert second.content == b"changed, and longer than before\n"
    assert header(second, b"etag") != header(first, b"etag")


def test_large_file_is_checked_on_every_request(tree: Path) -> None:
    """A file sent from disk is described by the fstat of its open descriptor."""
    site = site_for(tree)
    ask(site, b"/medium.bin")
    (tree / "medium.bin").write_bytes(MEDIUM * 2)
    reply = site.reply(Request(b"GET", b"/medium.bin", b"1.1", [(b"host", b"x")]))
    os.close(reply.fd)
    assert reply.length == 2 * len(MEDIUM)
    assert header(reply, b"content-length") == b"%d" % (2 * len(MEDIUM))


def test_options_are_validated(tree: Path) -> None:
    with pytest.raises(ValueError):
        FileServerOptions(header_timeout=0)
    with pytest.raises(ValueError):
        FileServerOptions(max_requests=0)
    with pytest.raises(ValueError):
        FileServerOptions(index="../x")
    with pytest.raises(ValueError):
        FileServer(root=str(tree / "small.txt"))
    assert FileServer(root=str(tree), listing=False).options.listing is False
    assert FileServer(FileServerOptions(root=str(tree))).root == str(tree.resolve())


def test_error_headers(tree: Path) -> None:
    reply = site_for(tree).error(404, [(b"x-extra", b"1")])
    names: Headers = reply.headers
    assert [n for n, _ in names] == [
        b"server",
        b"date",
        b"content-type",
        b"content-length",
        b"x-extra",
    ]
