"""Downloads: cache, hash pinning, mismatch deletion, offline message (no internet)."""

import functools
import http.server
import os
import threading

import pytest

from minigencast.data import downloads

NAME = "stats/mean_by_level.nc"


@pytest.fixture
def server(tmp_path):
    """A bucket look-alike served on 127.0.0.1 from a temporary folder."""
    root = tmp_path / "bucket"
    (root / "stats").mkdir(parents=True)
    (root / NAME).write_bytes(b"pretend netcdf " * 100)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("MINIGENCAST_CACHE_DIR", str(d))
    monkeypatch.delenv("MINIGENCAST_HASHES", raising=False)
    return d


def test_registry_urls_and_no_invented_hashes():
    assert len([n for n in downloads.REGISTRY if n.startswith("params/")]) == 4
    url = downloads.url_for("params/GenCast 1p0deg Mini <2019.npz", downloads.BASE_URL)
    assert url == (
        "https://storage.googleapis.com/dm_graphcast/gencast/params/"
        "GenCast%201p0deg%20Mini%20%3C2019.npz"
    )
    assert all(e.sha256 is None for e in downloads.REGISTRY.values())


def test_cache_dir_env_override(cache):
    assert downloads.cache_dir() == str(cache)


def test_fetch_from_local_server_pins_on_first_use(server, cache):
    base, root = server
    path = downloads.fetch(NAME, base=base, progressbar=False)
    assert path == os.path.join(str(cache), "stats", "mean_by_level.nc")
    digest = downloads.sha256sum(path)
    assert downloads.pinned_hashes()[NAME] == digest
    # A second fetch uses the cache (works even when the server content changes).
    (root / NAME).write_bytes(b"changed")
    assert downloads.fetch(NAME, base=base, progressbar=False) == path


def test_hash_mismatch_deletes_the_file(server, cache):
    base, _ = server
    with pytest.raises(downloads.HashMismatchError, match="sha256 mismatch.*deleted"):
        downloads.fetch(NAME, base=base, sha256="0" * 64, progressbar=False)
    assert not os.path.exists(os.path.join(str(cache), "stats", "mean_by_level.nc"))


def test_user_pin_file_is_enforced(server, cache):
    base, _ = server
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "hashes.txt").write_text(f"{NAME} {'a' * 64}\n")
    with pytest.raises(downloads.HashMismatchError):
        downloads.fetch(NAME, base=base, progressbar=False)


def test_file_url(tmp_path, cache):
    src = tmp_path / "mirror" / "stats"
    src.mkdir(parents=True)
    (src / "min_by_level.nc").write_bytes(b"x")
    path = downloads.fetch("stats/min_by_level.nc", base=(tmp_path / "mirror").as_uri() + "/")
    assert open(path, "rb").read() == b"x"


def test_offline_message_says_where_to_put_the_file(cache):
    with pytest.raises(FileNotFoundError, match=r"put it at: .*stats.*min_by_level\.nc"):
        # Port 9 on localhost: connection refused, no internet involved.
        downloads.fetch("stats/min_by_level.nc", base="http://127.0.0.1:9/", progressbar=False)
    assert os.listdir(os.path.join(str(cache), "stats")) == []  # no partial download left


def test_hash_mismatch_keeps_a_file_already_there(server, cache):
    """A file the user put in the cache is checked, never deleted."""
    base, _ = server
    path = cache / "stats" / "mean_by_level.nc"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"the user's own file")
    with pytest.raises(downloads.HashMismatchError, match="left as it is"):
        downloads.fetch(NAME, base=base, sha256="0" * 64, progressbar=False)
    assert path.read_bytes() == b"the user's own file"
