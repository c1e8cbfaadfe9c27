"""Output files that never cost the user a file: refuse, lock, write aside, move in.

The rules every file the package writes for a user follows (`forecast.ForecastWriter`):

  refuse   a path that is an existing folder (other than a forecast .zarr store), the
           input data or the checkpoint, a name without a known suffix, and an existing
           file unless it is one of our forecasts and `overwrite` is set;
  lock     `<path>.lock`, held with `fcntl.flock` while writing, so two forecasts to one
           path cannot both "succeed" (the kernel drops the lock if the process dies);
  aside    the data go to `<path>.tmp-<pid>` beside the target, then one `os.replace`
           moves it into place (atomic on POSIX), so an interrupted write leaves the
           old file untouched;
  clean    `<path>.tmp-<pid>` left by a process that no longer runs (killed mid-way)
           is removed by the next writer of that path, if it is provably ours: one of
           our forecasts by its `source` attribute, which the writer puts on disk
           first. A file or folder of that name that is not stays where it is.

Missing folders above the target are created by the writer (`make_folders`) and, if the
write fails, removed again while empty (`remove_empty_folders`). Nothing else is ever
deleted: no `rmtree` of a path the user named. Commands that
write several files into a folder (quickstart, evaluate, stats) replace only files that
one of our commands wrote there, as recorded in the folder (`claim_outputs`).
"""

from __future__ import annotations

import json
import os
import re
import shutil

SUFFIXES = (".nc", ".zarr")
SOURCE_PREFIX = "minigencast"  # the `source` attribute of every forecast we write
FORECAST_DIMS = frozenset({"sample", "init_time", "lead_time"})  # every forecast we write has them


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


ZARR_METADATA = frozenset({"zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata"})
_CHUNK_KEY = re.compile(r"c|\d+(\.\d+)*")


def _holds_only_the_store(folder: str, arrays) -> bool:
    """Whether `folder` holds nothing but a zarr store's own entries: metadata files, a
    folder per array of the group, chunk keys below them (no file a user added)."""
    for root, dirs, files in os.walk(folder):
        top = root == folder
        if not all((name in arrays) if top else _CHUNK_KEY.fullmatch(name) for name in dirs):
            return False
        if not all(n in ZARR_METADATA or (not top and _CHUNK_KEY.fullmatch(n)) for n in files):
            return False
    return True


def is_own_forecast(path: str) -> bool:
    """True if `path` is a NetCDF file or zarr store whose `source` attribute is ours and
    that has a forecast's (sample, init_time, lead_time) dimensions (xarray copies the
    attribute into what is derived from a forecast, e.g. an ensemble mean without
    `sample`); a store only if it holds nothing else, since replacing or clearing it
    deletes it all."""
    try:
        if os.path.isdir(path):
            import zarr

            group = zarr.open_group(path, mode="r")
            arrays = set(group.array_keys())
            if not _holds_only_the_store(path, arrays):
                return False
            source, dims = group.attrs.get("source", ""), arrays
        else:
            import netCDF4

            with netCDF4.Dataset(path, "r") as nc:
                source, dims = getattr(nc, "source", ""), set(nc.dimensions)
    except Exception:  # noqa: BLE001 -- unreadable means "not one of ours"
        return False
    return str(source).startswith(SOURCE_PREFIX) and FORECAST_DIMS <= dims


def check_output_path(out: str, *, overwrite: bool = False, protect=()) -> str:
    """Absolute path of `out` if the program may write a forecast there; raises otherwise.

    Raises:
      ValueError: `out` is one of the `protect` paths (input data, checkpoint) or has
        no .nc / .zarr suffix.
      FileExistsError: `out` is an existing folder, a file that is not one of our
        forecasts, or one of our forecasts while `overwrite` is False.
      PermissionError: the target folder cannot be created or written.
    """
    path = os.path.abspath(out)
    for p in protect:
        if p and os.path.exists(p) and _same_file(path, p):
            raise ValueError(f"--out {out} is an input of this forecast ({p}); choose another file")
    if os.path.isdir(path) and not (path.endswith(".zarr") and is_own_forecast(path)):
        raise FileExistsError(
            f"--out {out} is an existing folder; it names the forecast file to write, e.g. "
            f"{os.path.join(out, 'forecast.nc')}"
        )
    if not path.endswith(SUFFIXES):
        raise ValueError(f"--out {out}: the forecast file name must end in .nc or .zarr")
    if os.path.lexists(path):
        if not is_own_forecast(path):
            raise FileExistsError(
                f"--out {out} exists and is not a minigencast forecast; not replacing it"
            )
        if not overwrite:
            raise FileExistsError(
                f"--out {out} exists (an earlier forecast); pass --overwrite to replace it"
            )
    folder = os.path.dirname(path)
    existing = folder  # the folder, or its nearest ancestor that exists: nothing is created
    while not os.path.isdir(existing):
        if os.path.lexists(existing):
            raise PermissionError(f"cannot create output folder {folder}: {existing} is a file")
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        raise PermissionError(
            f"output folder {folder} is not writable"
            if existing == folder
            else f"cannot create output folder {folder}: {existing} is not writable"
        )
    return path


def make_folders(folder: str) -> list[str]:
    """Creates `folder` and its missing parents; returns those it created, deepest first,
    for `remove_empty_folders` to take back if the write fails."""
    made = []
    while not os.path.isdir(folder):
        made.append(folder)
        folder = os.path.dirname(folder)
    for f in reversed(made):
        try:
            os.mkdir(f)
        except OSError as e:
            raise PermissionError(f"cannot create output folder {f}: {e.strerror}") from e
    return made


def remove_empty_folders(made: list[str]) -> None:
    """Removes the folders `make_folders` created, deepest first, each only if empty."""
    for f in made:
        try:
            os.rmdir(f)
        except OSError:  # not empty (someone put a file there), or gone
            return


# ----------------------------------------------------------------------------- lock
BUSY = (
    "{path} is being written by another forecast (pid {pid}); wait for it or choose another --out"
)


def acquire_lock(path: str, busy: str = BUSY) -> int:
    """Exclusive lock on `<path>.lock` (a file descriptor); raises BlockingIOError if held.

    `busy` is the error message, formatted with `path` and the holder's `pid`.

    After locking, the descriptor must still be the file at that name: a holder
    unlinks it on release, and a waiter may have opened the old inode meanwhile.
    """
    import fcntl

    lock = path + ".lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise BlockingIOError(busy.format(path=path, pid=holder)) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            held = os.read(fd, 64).strip()
            if held and not held.isdigit():  # a lock of ours holds a process id, or nothing
                os.close(fd)
                raise FileExistsError(
                    f"{lock} exists and is not a minigencast lock; move it away first"
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


def release_lock(path: str, fd: int) -> None:
    try:
        os.unlink(path + ".lock")
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- temporaries
def temporary_path(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}"


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove(path: str) -> None:
    """Deletes a file or folder that this module named (a temporary), if present."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def remove_orphans(path: str) -> list[str]:
    """Clears the `<path>.tmp-<pid>` / `<path>.old-<pid>` of processes no longer running.

    Each is touched only if it is one of our forecasts (`is_own_forecast`), so a user's
    file or folder that merely has such a name stays. A `.tmp-` is a dead writer's
    unfinished forecast and is removed. An `.old-` is a finished forecast that
    `move_into_place` renamed aside and died before deleting; if `path` is missing (it
    died between its two renames), the `.old-` is the newest complete forecast there
    and is moved back to `path`, otherwise it is removed. Returns the names acted on.
    """
    folder, base = os.path.split(path)
    pattern = re.compile(re.escape(base) + r"\.(tmp|old)-(\d+)$")
    done = []
    for name in sorted(os.listdir(folder)):
        m = pattern.match(name)
        if not m or int(m.group(2)) == os.getpid() or process_alive(int(m.group(2))):
            continue
        orphan = os.path.join(folder, name)
        if not is_own_forecast(orphan):
            continue
        if m.group(1) == "old" and not os.path.lexists(path):
            os.replace(orphan, path)
        else:
            remove(orphan)
        done.append(name)
    return done


def clear_temporary(tmp: str) -> None:
    """Makes way for this process's temporary `tmp`: removes a leftover of ours there
    (a dead process with our pid), refuses to touch anything else."""
    if not os.path.lexists(tmp):
        return
    if not is_own_forecast(tmp):
        raise FileExistsError(
            f"{tmp} exists and is not a minigencast forecast; move it away to write here"
        )
    remove(tmp)


def move_into_place(tmp: str, path: str) -> None:
    """Atomically replaces `path` (absent, or a checked output of ours) by `tmp`.

    A file is replaced by one `os.replace`; a zarr folder cannot be, so the old one is
    first renamed aside (`<path>.old-<pid>`) and deleted after the new one is in place.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        old = f"{path}.old-{os.getpid()}"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def keep_aside(tmp: str, path: str) -> str:
    """Renames a finished `tmp` to a free `<stem>.kept-<pid>[-n]<suffix>` (not an orphan)."""
    stem, suffix = os.path.splitext(path)
    kept, n = f"{stem}.kept-{os.getpid()}{suffix}", 0
    while os.path.lexists(kept):
        n += 1
        kept = f"{stem}.kept-{os.getpid()}-{n}{suffix}"
    os.replace(tmp, kept)
    return kept


# ----------------------------------------------------------------------------- folders
OUTPUTS_RECORD = ".minigencast-outputs.json"  # what our commands wrote into a folder


def _recorded_outputs(folder: str) -> set[str]:
    try:
        with open(os.path.join(folder, OUTPUTS_RECORD)) as f:
            return set(json.load(f)["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def check_outputs(folder: str, names, *, earlier: bool = False) -> set[str]:
    """Refuse (FileExistsError, one line) if `folder` holds one of the files `names` and
    no command of ours recorded writing it there; returns the names counted as ours. No
    side effects: a command calls it before any work.

    `earlier`: the caller recognised `folder` by its contents as its own output from a
    version that kept no record (e.g. `quickstart.written_by_earlier_quickstart`); then,
    while the folder has no record, its existing `names` count as ours.
    """
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise FileExistsError(f"{folder} is a file; the output names a folder")
    ours = _recorded_outputs(folder)
    if earlier and not os.path.lexists(os.path.join(folder, OUTPUTS_RECORD)):
        ours |= set(names)
    clash = sorted(n for n in names if os.path.lexists(os.path.join(folder, n)) and n not in ours)
    if clash:
        raise FileExistsError(
            f"{folder} already holds {', '.join(clash)}, not written by minigencast; "
            "move it away or choose another output folder"
        )
    return ours


def claim_outputs(folder: str, names, *, earlier: bool = False) -> None:
    """Right before a command writes the files `names` into `folder` (quickstart,
    evaluate, figures, stats): `check_outputs`, then record them in the folder's
    `OUTPUTS_RECORD`. So a rerun replaces its own earlier outputs and never a user's
    file of the same name."""
    names = [os.fspath(n) for n in names]
    ours = check_outputs(folder, names, earlier=earlier)
    os.makedirs(folder, exist_ok=True)
    if set(names) <= _recorded_outputs(folder):
        return
    record = os.path.join(folder, OUTPUTS_RECORD)
    tmp = temporary_path(record)
    with open(tmp, "w") as f:
        json.dump({"files": sorted(ours | set(names))}, f, indent=1)
    os.replace(tmp, record)
