"""What a job's process is given: its spec's ``env``, its own ``STREAMFIT_*`` variables, its
secrets by reference (``env_from``), and a short allow-list of the scheduler's environment.

Nothing else of the scheduler's environment reaches a job: not its SMTP password, database URL,
named secrets (``STREAMFIT_SECRET_*``) or home folder. Secrets come by reference, resolved at
launch and never written to disk or the store::

    env_from: {HF_TOKEN: "secret:hf", DB_PASSWORD: "file:/run/secrets/db"}

>>> inherited({"PATH": "/bin", "LC_ALL": "C", "STREAMFIT_SMTP_PASSWORD": "x", "AWS_KEY": "y"})
{'PATH': '/bin', 'LC_ALL': 'C'}
>>> looks_secret("db_password"), looks_secret("LEARNING_RATE")
(True, False)
>>> mask("token=hunter2!", ["hunter2"])
'token=***!'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import SecretStr

from streamfit.jobs.errors import InvalidJobError

__all__ = [
    "ALLOWED",
    "RESERVED",
    "check_reference",
    "inherited",
    "looks_secret",
    "mask",
    "masked_env",
    "masked_tail",
    "resolve",
    "secret_values",
]

#: The scheduler's variables a job inherits, and why each. A spec's ``env`` overrides them.
ALLOWED: dict[str, str] = {
    "PATH": "find programs (the local backend also checks a command's program with it)",
    "HOME": "tools keep their configuration and caches there (pip, torch, matplotlib)",
    "USER": "who runs the job (getpass, tools that log it)",
    "LOGNAME": "the same, for tools that read this one",
    "LANG": "the locale: how text is encoded and sorted",
    "LANGUAGE": "the locale's languages for messages",
    "LC_*": "the locale's parts (LC_ALL, LC_CTYPE, ...)",
    "TZ": "the time zone of local times",
    "TMPDIR": "where temporary files go",
    "VIRTUAL_ENV": "the scheduler's virtualenv, for scripts that look for the active one",
    "PYTHONPATH": "where `python -m streamfit train` finds streamfit when it is not installed",
    "PYTHONHOME": "where Python finds its standard library, if the scheduler's needs it",
    "LD_LIBRARY_PATH": "shared libraries Python or PyTorch load (a shared libpython, CUDA)",
    "CUDA_VISIBLE_DEVICES": "the GPUs this machine gives jobs (its capacity counts them)",
    "OMP_NUM_THREADS": "threads per process, as chosen for this machine",
    "MKL_NUM_THREADS": "the same, for MKL",
    "OPENBLAS_NUM_THREADS": "the same, for OpenBLAS",
}

#: Set by the job manager for every job; a reference may not take their names.
RESERVED = frozenset(
    {"STREAMFIT_JOB_ID", "STREAMFIT_ATTEMPT", "STREAMFIT_OUTPUT_DIR", "STREAMFIT_CHECKPOINT_DIR"}
)

_SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
#: What a scheme looks like (``vault``, ``env``): anything else is not repeated in an error.
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{0,9}$")
#: A value fits in one environment string (Linux: 128 KiB); a secret file is rarely larger.
_MAX_VALUE = 64 * 1024
#: Values of variables whose names merely look secret are masked in logs from this length:
#: shorter ones (``KEY_SIZE=3``) would mask every ``3``.
_MIN_GUESSED = 4


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowed part of ``environ``, in its order."""
    return {k: v for k, v in environ.items() if k in ALLOWED or k.startswith("LC_")}


def looks_secret(name: str) -> bool:
    """Whether a variable's name says its value is a secret (case does not matter)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def check_reference(key: str, reference: str) -> None:
    """Raise ValueError unless ``key: reference`` is a usable ``env_from`` entry. The message
    never repeats the reference whole: it may be a secret pasted in by mistake."""
    if not _ENV_NAME.match(key):
        raise ValueError(f"{key!r} is not a variable name (letters, digits, _)")
    if key in RESERVED:
        raise ValueError(f"{key} is set by the job manager")
    scheme, colon, rest = reference.partition(":")
    if not colon or scheme not in ("file", "secret"):
        shown = f"{scheme!r}" if colon and _SCHEME.match(scheme) else "none"
        raise ValueError(
            f"{key}: unknown reference scheme ({shown}): use file:/absolute/path or secret:NAME"
        )
    if scheme == "file" and not Path(rest).is_absolute():
        raise ValueError(f"{key}: file: needs an absolute path")
    if scheme == "secret" and not _SECRET_NAME.match(rest):
        raise ValueError(f"{key}: secret: needs a name (letters, digits, _ . -)")


def resolve(env_from: Mapping[str, str], secrets: Mapping[str, SecretStr]) -> dict[str, str]:
    """The values ``env_from`` refers to, read now. :class:`InvalidJobError` (the attempt
    fails as ``invalid``) names the variable and the file or secret that cannot be had.

    A file's content is taken whole, less one final line break.
    """
    values = {}
    for key, reference in env_from.items():
        scheme, _, rest = reference.partition(":")
        if scheme == "secret":
            if rest not in secrets:
                raise InvalidJobError(
                    f"env_from {key}: no secret {rest!r} in the scheduler's settings (secrets: in "
                    f"settings.yaml, or STREAMFIT_SECRET_{rest})"
                )
            value = secrets[rest].get_secret_value()
        else:
            value = _read_file(key, Path(rest))
        if "\0" in value or len(value.encode()) > _MAX_VALUE:
            raise InvalidJobError(
                f"env_from {key}: {reference} is not usable as a variable's value (a NUL byte, "
                f"or over {_MAX_VALUE // 1024} KiB)"
            )
        values[key] = value
    return values


def _read_file(key: str, path: Path) -> str:
    try:
        text = path.read_bytes().decode()
    except OSError as exc:
        raise InvalidJobError(f"env_from {key}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidJobError(f"env_from {key}: {path} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def secret_values(
    env: Mapping[str, str],
    env_from: Mapping[str, str],
    secrets: Mapping[str, SecretStr],
    also: Iterable[SecretStr] = (),
) -> list[str]:
    """Every value to mask in a job's output: what its ``env_from`` refers to now (a file no
    longer readable is left out), its ``env`` values whose names look secret, and ``also``
    (the scheduler's own secrets)."""
    found = [s.get_secret_value() for s in (*secrets.values(), *also)]
    for key, reference in env_from.items():
        try:
            found.extend(resolve({key: reference}, secrets).values())
        except InvalidJobError:
            continue
    found += [v for k, v in env.items() if looks_secret(k) and len(v) >= _MIN_GUESSED]
    return sorted({v for v in found if v}, key=len, reverse=True)


def mask(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of each value replaced by ``***`` (longest first)."""
    ordered = sorted({v for v in values if v}, key=len, reverse=True)
    if not ordered:
        return text
    return re.sub("|".join(map(re.escape, ordered)), "***", text)


def masked_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` fit to show: the values of names that look secret are ``***``.

    >>> masked_env({"LR": "0.1", "API_TOKEN": "abc"})
    {'LR': '0.1', 'API_TOKEN': '***'}
    """
    return {k: "***" if looks_secret(k) else v for k, v in env.items()}


def masked_tail(
    read: Callable[[int | None], str], tail_bytes: int | None, values: Sequence[str]
) -> str:
    """The last ``tail_bytes`` of a log (all of it: None), masked. ``read(n)`` gives the last
    ``n`` bytes of the log. A secret that the cut would halve is left out, not half shown.

    >>> log = "key=hunter2\\nok\\n"
    >>> masked_tail(lambda n: log[-n:] if n else log, 6, ["hunter2"])
    '\\nok\\n'
    """
    if tail_bytes is None or not values:
        return mask(read(tail_bytes), values)
    longest = max(len(v.encode()) for v in values)
    raw = read(tail_bytes + longest).encode()
    start, moved = max(0, len(raw) - tail_bytes), True
    while moved:  # until no value begins before the cut and ends after it
        moved = False
        for value in (v.encode() for v in values):
            found = raw.find(value, max(0, start - len(value) + 1))
            if 0 <= found < start:
                start, moved = found + len(value), True
    return mask(raw[start:].decode("utf-8", errors="replace"), values)
