"""Clean prompts: text that holds no secret and no personal data, and must not be flagged.

Real text from this machine (the Python standard library's sources, the licences and package
docs under /usr/share), log lines made here with timestamps, UUIDs, git SHAs, versions and
hashes, and the near-misses that trip detectors: 13-digit numbers that are not cards, order
numbers shaped like US phones, a git SHA beside a line about an AWS key, UUIDs, lockfile
hashes, base64 of things that are not secrets. Chunks that hold an email address, a
credential in a URL or people's names in credits are skipped: real findings, not clean text."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import re
import sysconfig
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path

from corpus.checksums import luhn_digit
from corpus.clean_numbers import data_exports, engineering_pastes, math_questions

_NOT_CLEAN = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z.]{2,}"  # an email address
    r"|://[^\s/:@]+:[^\s/@]+@"  # credentials in a URL
    r"|-----BEGIN|PRIVATE KEY"
    # people named in credits and changelogs: personal data, so not clean text
    r"|^\s*\[ [^\]]+ \]\s*$|^ -- |\b(?:author|copyright|written by|contributed by|"
    r"maintainer|thanks to)\b",
    re.IGNORECASE | re.MULTILINE,
)
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "__pycache__", "turtledemo"}


@cache
def _stdlib_files() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return tuple(
        sorted(p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(root).parts))
    )


@cache
def _doc_files() -> tuple[Path, ...]:
    licenses = sorted(Path("/usr/share/common-licenses").glob("*"))
    docs = sorted(
        p
        for p in Path("/usr/share/doc").glob("*/*")
        if p.name.lower().startswith(("readme", "changelog", "news"))
    )
    return tuple(p for p in licenses + docs if p.is_file())


@cache
def _read(path: Path) -> tuple[str, ...]:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return tuple(raw.decode("utf-8").splitlines())
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return ()


def _chunk(rng: random.Random, files: tuple[Path, ...], low: int, high: int) -> str:
    """A window of `low`..`high` lines from a random file, clean by _NOT_CLEAN."""
    for _ in range(200):
        lines = _read(rng.choice(files))
        if len(lines) < low:
            continue
        n = rng.randint(low, min(high, len(lines)))
        start = rng.randrange(0, len(lines) - n + 1)
        text = "\n".join(lines[start : start + n]).strip()
        if len(text) > 200 and not _NOT_CLEAN.search(text):
            return text
    raise RuntimeError("no clean chunk found")  # pragma: no cover


def stdlib_code(rng: random.Random) -> str:
    intro = rng.choice(
        [
            "",
            "What does this function do?\n\n",
            "Add type hints to this:\n\n",
            "Why is this slow on large inputs?\n\n",
        ]
    )
    return intro + _chunk(rng, _stdlib_files(), 15, 60)


def documentation(rng: random.Random) -> str:
    intro = rng.choice(["", "Summarise this in plain words:\n\n", "Is this allowed?\n\n"])
    return intro + _chunk(rng, _doc_files(), 10, 40)


# -- synthesised logs ------------------------------------------------------------------------


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _stamp(rng: random.Random) -> str:
    return (
        f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
        f"{rng.randrange(1000):03d}Z"
    )


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def log_lines(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(5, 25)):
        shape = rng.randrange(6)
        t = _stamp(rng)
        if shape == 0:
            lines.append(
                f"{t} INFO  http request_id={_uuid(rng)} method=GET path=/v2/orders/"
                f"{rng.randrange(10**5, 10**7)} status=200 duration_ms={rng.randrange(900)}"
            )
        elif shape == 1:
            lines.append(
                f"{t} INFO  deploy service=billing version={rng.randrange(1, 9)}."
                f"{rng.randrange(30)}.{rng.randrange(20)} commit={_hex(rng, 40)}"
            )
        elif shape == 2:
            lines.append(
                f"{t} WARN  worker-{rng.randrange(8)} job={_uuid(rng)} retry="
                f"{rng.randrange(1, 5)} backoff_ms={rng.randrange(100, 5000)}"
            )
        elif shape == 3:
            lines.append(
                f"{t} DEBUG blob digest=sha256:{_hex(rng, 64)} cached={rng.choice('01')} "
                f"size={rng.randrange(10**3, 10**7)}"
            )
        elif shape == 4:
            lines.append(
                f"{t} INFO  orders order_id=ORD-{rng.randrange(10**6, 10**7)} items="
                f"{rng.randrange(1, 9)} total_cents={rng.randrange(100, 10**6)} "
                f"trace={_hex(rng, 32)}"
            )
        else:
            lines.append(
                f"Dec  {rng.randrange(1, 29)} {rng.randrange(24):02d}:"
                f"{rng.randrange(60):02d}:{rng.randrange(60):02d} web-{rng.randrange(9)} "
                f"systemd[1]: Started session-{rng.randrange(10**4)}.scope "
                f"(pid {rng.randrange(300, 99999)})."
            )
    intro = rng.choice(["", "Why do these retries keep happening?\n\n", "Find the error:\n\n"])
    return intro + "\n".join(lines)


# -- near-misses -------------------------------------------------------------------------------


def thirteen_digits(rng: random.Random) -> str:
    """Millisecond timestamps and EAN-13 barcodes that fail the Luhn check."""
    while True:
        ean12 = str(rng.choice([400, 590, 871, 978])) + "".join(
            rng.choice("0123456789") for _ in range(9)
        )
        ean = ean12 + str(-sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(ean12)) % 10)
        if luhn_digit(ean[:-1]) != ean[-1]:
            break
    millis = rng.randrange(1_600_000_000_000, 1_800_000_000_000)
    while luhn_digit(str(millis)[:-1]) == str(millis)[-1]:
        millis += 1
    return rng.choice(
        [
            f"The export job logged started_at={millis} but the dashboard shows another time. "
            f"Which timezone is that?",
            f"Product lookup failed for barcode {ean}. The scanner reads EAN-13; can you write a "
            f"function that validates the check digit?",
            f'{{"sku": "{ean}", "stock": {rng.randrange(200)}, "updated": {millis}}}',
        ]
    )


def order_numbers(rng: random.Random) -> str:
    """Order and ticket numbers written 3-3-4, like US phone numbers."""
    n = f"{rng.randrange(100, 1000)}-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}"
    return rng.choice(
        [
            f"Order {n} was shipped twice. Draft an apology to the customer.",
            f"Ticket #{n}: refund not applied after the return was received.",
            f"order_no,status\n{n},shipped\n",
        ]
    )


def sha_near_aws(rng: random.Random) -> str:
    lines = [
        f"{_hex(rng, 40)} {msg}"
        for msg in rng.sample(
            [
                "rotate the aws key used by the backup job",
                "docs: where the aws key is configured",
                "fix: read aws key id from the environment",
                "bump boto3",
                "ci: cache pip",
            ],
            3,
        )
    ]
    return "Write release notes from this git log:\n\n" + "\n".join(lines)


def uuids(rng: random.Random) -> str:
    return rng.choice(
        [
            f'{{"tenant_id": "{_uuid(rng)}", "subscription_id": "{_uuid(rng)}", '
            f'"region": "westeurope"}}',
            f"az group list --subscription {_uuid(rng)} --query '[].name'",
            f"{_stamp(rng)} INFO  api request_id={_uuid(rng)} status=200 duration_ms="
            f"{rng.randrange(900)}",
            f"INSERT INTO jobs (id, owner) VALUES ('{_uuid(rng)}', '{_uuid(rng)}');",
        ]
    )


def lockfile_hashes(rng: random.Random) -> str:
    sha = _hex(rng, 64)
    integrity = base64.b64encode(rng.randbytes(64)).decode()
    return rng.choice(
        [
            f'[[package]]\nname = "requests"\nversion = "2.32.3"\nfiles = [\n    {{file = '
            f'"requests-2.32.3-py3-none-any.whl", hash = "sha256:{sha}"}},\n]\n',
            f'"node_modules/lodash": {{\n  "version": "4.17.21",\n  "resolved": '
            f'"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz",\n  "integrity": '
            f'"sha512-{integrity}"\n}}\n',
            f'[[package]]\nname = "serde"\nversion = "1.0.215"\nsource = '
            f'"registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "{sha}"\n',
            f"requests==2.32.3 \\\n    --hash=sha256:{sha}\n",
            f"golang.org/x/text v0.21.0 h1:{base64.b64encode(rng.randbytes(32)).decode()}\n",
            f"#12 [builder 3/7] RUN pip install -r requirements.txt\n#12 CACHED cache key="
            f"sha256:{sha}\n",
        ]
    )


def base64_blobs(rng: random.Random) -> str:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(rng.randrange(60, 300))
    config = json.dumps({"theme": "dark", "columns": rng.randrange(2, 6), "lang": "en"}).encode()
    text = b"Quarterly report, draft 3. Figures are preliminary."
    return rng.choice(
        [
            f'<img alt="logo" src="data:image/png;base64,{base64.b64encode(png).decode()}">',
            f"The settings cookie is {base64.b64encode(config).decode()}, how do I read it in JS?",
            f"echo {base64.b64encode(text).decode()} | base64 -d",
            f"sha256sum says {hashlib.sha256(text).hexdigest()} for report.pdf; is it intact?",
        ]
    )


CLEAN_CLASSES: dict[str, tuple[Callable[[random.Random], str], float]] = {
    # weights: prompts of each class in the default 900 (the first 600 as before issue 21's
    # clean families; a smaller --clean shares them out in the same proportions)
    "stdlib-code": (stdlib_code, 240),
    "documentation": (documentation, 90),
    "logs": (log_lines, 90),
    "near-miss-13-digits": (thirteen_digits, 30),
    "near-miss-order-number": (order_numbers, 30),
    "near-miss-sha-near-aws": (sha_near_aws, 30),
    "near-miss-uuid": (uuids, 30),
    "near-miss-lockfile-hash": (lockfile_hashes, 30),
    "near-miss-base64": (base64_blobs, 30),
    "math": (math_questions, 100),
    "data-export": (data_exports, 100),
    "engineering-paste": (engineering_pastes, 100),
}
