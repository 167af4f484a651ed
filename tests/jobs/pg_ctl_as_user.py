#!/usr/bin/env python3
"""pg_ctl for the tests, runnable as root.

PostgreSQL refuses to run as root (initdb and postgres both check), and CI runs the tests as
root on a clean machine. pytest-postgresql runs this file in place of pg_ctl. Run by anyone
else it simply hands over to the real pg_ctl. Run by root it runs the real pg_ctl as an
unprivileged user, on a data folder of that user's in the system's temporary folder: the one
pytest-postgresql asks for lies in root's private temporary folder, where the server could
not reach it (and opening that folder up is undone by the next pytest that starts). The folder
asked for is still made, empty, for pytest-postgresql's own checks; ``stop`` removes the
server's folder (``<tmp>/streamfit-pg-<hash>``, holding ``data`` and ``postgresql.log``).

The real pg_ctl is ``$STREAMFIT_PG_CTL``, else the newest of Debian's
``/usr/lib/postgresql/<version>/bin/pg_ctl``, else ``pg_ctl`` on the PATH.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Who runs the server when the tests run as root: Debian's package creates ``postgres``.
USERS = ("postgres", "nobody")


def find_pg_ctl() -> str | None:
    if os.environ.get("STREAMFIT_PG_CTL"):
        return os.environ["STREAMFIT_PG_CTL"]
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if found:
        return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
    return shutil.which("pg_ctl")


def _user() -> pwd.struct_passwd:
    for name in USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise SystemExit(f"no unprivileged user ({' or '.join(USERS)}) to run PostgreSQL as")


def _as_user(argv: list[str], user: pwd.struct_passwd) -> tuple[list[str], Path | None]:
    """``argv`` with the data folder and log file moved to a folder that ``user`` owns."""
    out = list(argv)
    home = None
    for i, flag in enumerate(argv[:-1]):
        if flag in ("-D", "--pgdata"):
            asked = Path(argv[i + 1])
            digest = hashlib.sha256(str(asked.resolve()).encode()).hexdigest()[:16]
            home = Path(tempfile.gettempdir()) / f"streamfit-pg-{digest}"
            if argv[0] == "initdb":
                asked.mkdir(parents=True, exist_ok=True)
                home.mkdir(mode=0o700, exist_ok=True)
                os.chown(home, user.pw_uid, user.pw_gid)
            out[i + 1] = str(home / "data")
    for i, flag in enumerate(argv[:-1]):
        if flag in ("-l", "--log") and home is not None:
            out[i + 1] = str(home / "postgresql.log")
    return out, home


def main(argv: list[str]) -> None:
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        raise SystemExit("pg_ctl not found: install PostgreSQL or set STREAMFIT_PG_CTL")
    # mirakuru (under pytest-postgresql) tags the server with this variable so that it can kill
    # leaked processes, but every Python process that imports it kills, as it exits, every
    # process whose tag merely *contains* its pid: a concurrent pytest, or a forked child, can
    # take the server down mid-session. The fixture stops the server with ``pg_ctl stop``.
    os.environ.pop("mirakuru_uuid", None)
    if os.geteuid() != 0:
        os.execv(pg_ctl, [pg_ctl, *argv])
    user = _user()
    argv, home = _as_user(argv, user)
    os.environ["HOME"] = user.pw_dir
    done = subprocess.run(
        [pg_ctl, *argv],
        check=False,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd="/",  # the caller's folder may be closed to the user
    )
    if argv[:1] == ["stop"] and home is not None:
        shutil.rmtree(home, ignore_errors=True)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
