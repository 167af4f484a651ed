#!/usr/bin/env python3
"""pg_ctl for the tests, runnable as root.

PostgreSQL refuses to run as root (initdb and postgres both check), and CI runs the tests as
root on a clean machine. pytest-postgresql runs this file in place of pg_ctl. Run by anyone
else it simply hands over to the real pg_ctl; run by root it gives the data folder and log
file that pytest-postgresql chose (inside root's private temporary folder) to an unprivileged
user, lets that user pass through the folders above them (search permission, not listing),
and runs the real pg_ctl as that user.

The real pg_ctl is ``$STREAMFIT_PG_CTL``, else the newest of Debian's
``/usr/lib/postgresql/<version>/bin/pg_ctl``, else ``pg_ctl`` on the PATH.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import sys
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


def _hand_over(path: Path, user: pwd.struct_passwd, *, folder: bool) -> None:
    if folder:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        path.touch()
    os.chown(path, user.pw_uid, user.pw_gid)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def main(argv: list[str]) -> None:
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        raise SystemExit("pg_ctl not found: install PostgreSQL or set STREAMFIT_PG_CTL")
    if os.geteuid() == 0:
        user = _user()
        for flag, value in itertools.pairwise(argv):
            if flag in ("-D", "--pgdata"):
                _hand_over(Path(value), user, folder=True)
            elif flag in ("-l", "--log"):
                _hand_over(Path(value), user, folder=False)
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        os.environ["HOME"] = user.pw_dir
    os.execv(pg_ctl, [pg_ctl, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
