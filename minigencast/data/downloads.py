"""Downloads of DeepMind's public GenCast files, cached and hash-checked (pooch).

Files live in DeepMind's public bucket (docs/design.md §10):

  https://storage.googleapis.com/dm_graphcast/gencast/stats/{mean,stddev,diffs_stddev,min}_by_level.nc
  https://storage.googleapis.com/dm_graphcast/gencast/dataset/source-era5_date-2019-03-29_res-1.0_levels-13_steps-NN.nc
  https://storage.googleapis.com/dm_graphcast/gencast/params/GenCast 1p0deg Mini <2019.npz (+3)

Cache: `cache_dir()` = $MINIGENCAST_CACHE_DIR, else the user cache dir
(`pooch.os_cache("minigencast")`, e.g. ~/.cache/minigencast). Files keep their
bucket path below it (`stats/mean_by_level.nc`, `params/...`).

Hashes, honestly: this package was written offline, so the sha256 of DeepMind's
files could not be computed and none is invented here (REGISTRY entries have
`sha256=None`). Pinning works in two ways:

  * your own pins: a file `hashes.txt` in the cache dir (or the path in
    $MINIGENCAST_HASHES), lines `<name> <sha256>` -- pinned files are checked on
    every download and a mismatch deletes the file and raises;
  * trust on first use: an unpinned file's sha256 is computed after download,
    logged, and appended to `hashes.txt`, so later downloads are verified against
    it. `minigencast download --list` prints names, URLs and pins.

Offline, `fetch` fails with a message naming the URL and the exact path to put a
manually downloaded file at. $MINIGENCAST_BASE_URL replaces the bucket URL (a
mirror, `file:///...`, or a local test server).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import urllib.parse
import urllib.request

log = logging.getLogger(__name__)

BASE_URL = "https://storage.googleapis.com/dm_graphcast/gencast/"


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str  # path below the bucket prefix and below the cache dir
    description: str
    sha256: str | None = None  # None: unknown offline (see module docstring)


def _entries():
    stats = [
        Entry(f"stats/{n}_by_level.nc", f"GenCast normalisation statistics: {n}")
        for n in ("mean", "stddev", "diffs_stddev", "min")
    ]
    data = [
        Entry(
            f"dataset/source-era5_date-2019-03-29_res-1.0_levels-13_steps-{s:02d}.nc",
            f"ERA5 example, 1 deg, 13 levels, {s} x 12 h target steps",
        )
        for s in (1, 4, 12, 30)
    ] + [
        Entry(
            "dataset/source-hres_date-2022-03-29_res-0.25_levels-13_steps-01.nc",
            "HRES-fc0 example, 0.25 deg, 13 levels, 1 target step",
        )
    ]
    params = [
        Entry(f"params/{n}.npz", f"checkpoint {n} (weights licence: see DeepMind's README)")
        for n in (
            "GenCast 1p0deg Mini <2019",
            "GenCast 1p0deg <2019",
            "GenCast 0p25deg <2019",
            "GenCast 0p25deg Operational <2022",
        )
    ]
    return {e.name: e for e in stats + data + params}


REGISTRY = _entries()
ALIASES = {
    "stats": [n for n in REGISTRY if n.startswith("stats/")],
    "example": ["dataset/source-era5_date-2019-03-29_res-1.0_levels-13_steps-01.nc"],
    "mini": ["params/GenCast 1p0deg Mini <2019.npz"],
}


def cache_dir() -> str:
    """$MINIGENCAST_CACHE_DIR, else the OS user cache dir for minigencast."""
    env = os.environ.get("MINIGENCAST_CACHE_DIR")
    if env:
        return env
    import pooch

    return str(pooch.os_cache("minigencast"))


def base_url() -> str:
    url = os.environ.get("MINIGENCAST_BASE_URL", BASE_URL)
    return url if url.endswith("/") else url + "/"


def url_for(name: str, base: str | None = None) -> str:
    return (base or base_url()) + urllib.parse.quote(name)


def _hashes_path() -> str:
    return os.environ.get("MINIGENCAST_HASHES") or os.path.join(cache_dir(), "hashes.txt")


def pinned_hashes() -> dict[str, str]:
    """{name: sha256} from the registry and the user's hashes.txt (user pins win)."""
    out = {n: e.sha256 for n, e in REGISTRY.items() if e.sha256}
    path = _hashes_path()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    name, _, digest = line.rpartition(" ")
                    out[name.strip()] = digest.strip().removeprefix("sha256:")
    return out


def sha256sum(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record_pin(name: str, digest: str) -> None:
    path = _hashes_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{name} {digest}\n")
    log.warning(
        "%s had no pinned hash; recorded sha256 %s in %s (trust on first use)", name, digest, path
    )


class HashMismatchError(ValueError):
    pass


def fetch(
    name: str,
    *,
    base: str | None = None,
    sha256: str | None = None,
    progressbar: bool = True,
    directory: str | None = None,
) -> str:
    """Download (or find in the cache) one file; return its local path.

    Args:
      name: a REGISTRY key (e.g. "stats/mean_by_level.nc") or any path below the base URL.
      base: base URL (default $MINIGENCAST_BASE_URL or DeepMind's bucket); may be file://.
      sha256: expected hash; default: the pinned one (registry or hashes.txt).
      directory: cache directory (default `cache_dir()`).

    Raises:
      HashMismatchError: the sha256 differs: a download is deleted, a file already in
        the cache is left in place.
      FileNotFoundError: the download failed (offline?); says what to put where.
    """
    directory = directory or cache_dir()
    path = os.path.join(directory, *name.split("/"))
    expected = sha256 or pinned_hashes().get(name)
    url = url_for(name, base)
    downloaded = not os.path.exists(path)
    check = path
    if downloaded:
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise PermissionError(
                f"cannot create the cache folder {folder} ({e.strerror}); "
                "set MINIGENCAST_CACHE_DIR to a writable folder"
            ) from e
        if not os.access(folder, os.W_OK):
            raise PermissionError(
                f"the cache folder {folder} is not writable; "
                "set MINIGENCAST_CACHE_DIR to a writable folder"
            )
        check = f"{path}.part-{os.getpid()}"  # ours alone: never a user's file
        try:
            if url.startswith("file://"):
                src = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
                shutil.copyfile(src, check)
            else:
                import pooch

                pooch.retrieve(
                    url,
                    known_hash=None,
                    fname=os.path.basename(check),
                    path=os.path.dirname(check),
                    progressbar=progressbar,
                )
        except Exception as e:  # noqa: BLE001 - any transport error means "not downloaded"
            if os.path.exists(check):
                os.remove(check)
            raise FileNotFoundError(
                f"Could not download {name!r} from {url} ({type(e).__name__}: {e}). "
                f"If you are offline, download it elsewhere and put it at: {path}"
            ) from e
    # The hash is checked before a download takes its place; a file that was already
    # there (perhaps put there by the user) is never deleted.
    digest = sha256sum(check)
    if expected is not None and digest != expected:
        if downloaded:
            os.remove(check)
        what = "The download was deleted" if downloaded else f"The file at {path} was left as it is"
        raise HashMismatchError(
            f"sha256 mismatch for {name!r}: got {digest}, expected {expected}. {what}. Fix: "
            f"{'retry the download' if downloaded else 'replace or remove that file'}; if the "
            f"upstream file changed on purpose, update its pin in {_hashes_path()}."
        )
    if downloaded:
        os.replace(check, path)
    if expected is None:
        _record_pin(name, digest)
    return path


def fetch_many(names, **kwargs) -> list[str]:
    """Fetch several registry names or aliases ("stats", "example", "mini"); others are
    refused with the list (`fetch` itself takes any path below the base URL)."""
    unknown = [n for n in names if n not in ALIASES and n not in REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown name(s) {unknown}; choose from the aliases {sorted(ALIASES)} or the "
            f"registry: {', '.join(REGISTRY)}"
        )
    expanded = []
    for n in names:
        expanded.extend(ALIASES.get(n, [n]))
    return [fetch(n, **kwargs) for n in expanded]


def describe() -> str:
    """A table of the registry: name, pinned hash (or 'unpinned'), URL."""
    pins = pinned_hashes()
    lines = [f"cache dir: {cache_dir()}", f"aliases: {', '.join(ALIASES)}"]
    for name, e in REGISTRY.items():
        pin = pins.get(name, "unpinned")
        lines.append(f"{name}\n    {e.description}\n    sha256: {pin}\n    {url_for(name)}")
    return "\n".join(lines)
