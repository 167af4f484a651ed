"""What a job's process is given: the allow-list, references to secrets, and masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from streamfit.jobs.environment import (
    ALLOWED,
    check_reference,
    inherited,
    looks_secret,
    mask,
    masked_tail,
    resolve,
    secret_values,
)
from streamfit.jobs.errors import InvalidJobError

SCHEDULER_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/sched",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "CUDA_VISIBLE_DEVICES": "0",
    "STREAMFIT_HOME": "/srv/streamfit",
    "STREAMFIT_DATABASE_URL": "postgresql://u:pw@db/sf",
    "STREAMFIT_SMTP_PASSWORD": "smtp-pw",
    "STREAMFIT_SMTP_USER": "mailer",
    "STREAMFIT_SECRET_hf": "hf-token",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "GITHUB_TOKEN": "gh",
    "SSH_AUTH_SOCK": "/tmp/agent",
}


def test_a_job_inherits_only_the_allow_list() -> None:
    got = inherited(SCHEDULER_ENV)
    assert got == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/sched",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    # Nothing of streamfit's own, and nothing that looks secret, is ever on the list.
    assert not any(name.startswith("STREAMFIT_") or looks_secret(name) for name in ALLOWED)


def test_names_that_look_secret() -> None:
    secret = ["DB_PASSWORD", "passwd", "client_secret", "HF_TOKEN", "api_key", "Credentials"]
    plain = ["LR", "EPOCHS", "DATA_DIR", "MODEL_NAME"]
    assert all(looks_secret(n) for n in secret)
    assert not any(looks_secret(n) for n in plain)


@pytest.mark.parametrize(
    ("key", "reference", "message"),
    [
        ("PW", "vault:kv/db", "unknown reference scheme ('vault')"),
        ("PW", "hunter2", "unknown reference scheme (none)"),
        ("PW", "Hunter2:Hunter3", "unknown reference scheme (none)"),  # not echoed
        ("PW", "file:relative/pw.txt", "file: needs an absolute path"),
        ("PW", "secret:", "secret: needs a name"),
        ("PW", "secret:a b", "secret: needs a name"),
        ("1PW", "secret:db", "is not a variable name"),
        ("STREAMFIT_JOB_ID", "secret:db", "is set by the job manager"),
    ],
)
def test_references_are_checked_without_echoing_them(
    key: str, reference: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        check_reference(key, reference)
    assert message in str(caught.value)
    assert "hunter" not in str(caught.value).lower()


def test_references_resolve_from_files_and_named_secrets(tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret\n")  # one final line break is not part of the value
    check_reference("DB_PW", f"file:{pw}")
    secrets = {"hf": SecretStr("hf-abc")}
    assert resolve({"DB_PW": f"file:{pw}", "HF": "secret:hf"}, secrets) == {
        "DB_PW": "s3cret",
        "HF": "hf-abc",
    }


def test_a_reference_that_cannot_be_had_names_the_variable_and_the_place(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(InvalidJobError, match=f"env_from DB_PW: cannot read {missing}: No such"):
        resolve({"DB_PW": f"file:{missing}"}, {})
    with pytest.raises(InvalidJobError, match=r"env_from HF: no secret 'hf'.*STREAMFIT_SECRET_hf"):
        resolve({"HF": "secret:hf"}, {})
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidJobError, match="not UTF-8"):
        resolve({"K": f"file:{binary}"}, {})
    nul = tmp_path / "nul.txt"
    nul.write_text("a\0b")
    with pytest.raises(InvalidJobError, match="NUL"):
        resolve({"K": f"file:{nul}"}, {})


def test_values_to_mask(tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("file-secret")
    values = secret_values(
        {"API_TOKEN": "tok-1234", "KEY_SIZE": "3", "LR": "0.01"},
        {"PW": f"file:{pw}", "GONE": f"file:{tmp_path / 'gone'}", "HF": "secret:hf"},
        {"hf": SecretStr("hf-abc"), "other": SecretStr("other-xyz")},
        [SecretStr("smtp-pw")],
    )
    assert set(values) == {"file-secret", "tok-1234", "hf-abc", "other-xyz", "smtp-pw"}


def test_mask_replaces_every_occurrence_longest_first() -> None:
    assert mask("a=abcd b=abcdef c=abcd", ["abcd", "abcdef"]) == "a=*** b=*** c=***"
    assert mask("nothing", []) == "nothing"
    assert mask("x", [""]) == "x"


def test_a_tail_never_shows_half_a_secret() -> None:
    log = "0123456789 secret-value-42 end\n"

    def read(n: int | None) -> str:
        return log if n is None else log.encode()[-n:].decode()

    for tail in range(1, len(log) + 3):
        shown = masked_tail(read, tail, ["secret-value-42"])
        assert "secret" not in shown and "value" not in shown and "-42" not in shown
        assert len(shown.encode()) <= tail
        assert log.endswith(shown.replace("***", "secret-value-42")) or shown == ""
    assert masked_tail(read, None, ["secret-value-42"]) == "0123456789 *** end\n"
    assert masked_tail(read, 4, []) == "end\n"
