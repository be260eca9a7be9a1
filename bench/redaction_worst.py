"""Redaction throughput on realistic prompts, digit-dense log pastes and adversarial input,
with Hyperscan and with the pure-Python keyword search.

    python bench/redaction_worst.py [--size 65536] [--rounds 5] [--only NAME,...]
                                    [--no-hyperscan] [--json FILE]

A prompt is attacker-controlled: an employee can paste 4 MB of `api_key=` to slow the proxy.
Every shape here must cost about what realistic text costs per byte (issue 21: no worse than
~10x), and grow linearly: each is timed at `size` and at 4 x `size`, and the table gives ms per
64 KB at both (a quadratic shape costs 4 times more per byte at the larger size).

The default profile of the shipped policy, through the library (scan(); redact_body() for the
JSON shapes). Without --no-hyperscan both keyword searches are measured (when hyperscan is
installed); --no-hyperscan measures only the fallback, as on a machine without the package.
Each row also gives its number of findings and a digest of them, so a change to the engine
can be checked to find exactly the same (compare two JSON files' `digest` columns).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

from redaction_bench import prompt_texts  # noqa: E402
from redaction_corpus import generate  # noqa: E402

from proxy.policy.loader import load_policy  # noqa: E402
from proxy.redact import bodies, detectors  # noqa: E402

KB64 = 64 * 1024


def repeated(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def filled(make: Callable[[random.Random], str], size: int, seed: int = 0) -> str:
    """Lines from `make` up to `size` characters."""
    rng, lines, total = random.Random(seed), [], 0
    while total < size:
        line = make(rng)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)[:size]


def _stamp(rng: random.Random) -> str:
    day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _ip(rng: random.Random) -> str:
    first = rng.choice((10, 172, 192, 203, 198, 52, 34, 185, 91))
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"


def log_line(rng: random.Random) -> str:
    """One line of a log paste dense with digits: stamps, ids, addresses, sizes, latencies."""
    shape = rng.randrange(5)
    if shape == 0:  # an access log
        return (f'{_ip(rng)} - - [{rng.randint(1, 28):02d}/Dec/2026:{rng.randint(0, 23):02d}:'
                f'{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} +0000] "GET /api/v1/items/'
                f'{rng.randrange(10**8, 10**10)} HTTP/1.1" {rng.choice((200, 404, 500))} '
                f'{rng.randrange(10**6)} "-" "curl/8.{rng.randrange(9)}.0" '
                f"{rng.random():.6f} {rng.randrange(10**12, 10**13)}")  # fmt: skip
    if shape == 1:  # an application log
        return (f"{_stamp(rng)} pid={rng.randrange(10**5)} tid={rng.randrange(10**6)} "
                f"user_id={rng.randrange(10**9, 10**10)} order={rng.randrange(10**11)} "
                f"latency_us={rng.randrange(10**7)} bytes={rng.randrange(10**9)} "
                f"peer={_ip(rng)}:{rng.randrange(1024, 65536)}")  # fmt: skip
    if shape == 2:  # metrics
        return " ".join(f"{rng.random() * 10 ** rng.randrange(1, 8):.3f}" for _ in range(12))
    if shape == 3:  # a kernel log
        return (f"[{rng.randrange(10**6)}.{rng.randrange(10**6):06d}] eth0: "
                f"rx {rng.randrange(10**9)} tx {rng.randrange(10**9)} drops {rng.randrange(100)} "
                f"irq {rng.randrange(200)} cpu {rng.randrange(64)}")  # fmt: skip
    return ",".join(str(rng.randrange(10 ** rng.randrange(1, 13))) for _ in range(14))  # CSV


def _b64(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(n))


# name -> (what it is, how to make `size` characters of it). Realistic texts come from the
# corpus; the rest are made here.
SHAPES: dict[str, tuple[str, Callable[[int], str]]] = {
    "digit-logs": ("log pastes dense with digits", lambda n: filled(log_line, n)),
    "repeat-api_key=": ("`api_key=` repeated", lambda n: repeated("api_key=", n)),
    "repeat-api_key=v": (
        "`api_key=<random 20> ` repeated (every one a secret)",
        lambda n: filled(lambda r: f"api_key={_b64(r, 20)}", n),
    ),
    "repeat-password": ("`password ` repeated", lambda n: repeated("password ", n)),
    "repeat-password-is": ("`my password is ` repeated", lambda n: repeated("my password is ", n)),
    "repeat-password:": ("`password: ` repeated", lambda n: repeated("password: ", n)),
    "repeat-bearer": (
        "`Authorization: Bearer ` repeated",
        lambda n: repeated("Authorization: Bearer ", n),
    ),
    "repeat-secret": (
        "`secret_token_key_auth` repeated",
        lambda n: repeated("secret_token_key_auth", n),
    ),
    "repeat-eyJ": ("`eyJ` repeated", lambda n: repeated("eyJ", n)),
    "repeat-BEGIN": (
        "`-----BEGIN PRIVATE KEY-----` repeated",
        lambda n: repeated("-----BEGIN RSA PRIVATE KEY-----\n", n),
    ),
    "repeat-url": ("`a://b:c` repeated", lambda n: repeated("a://b:c", n)),
    "repeat-@": ("`a@` repeated", lambda n: repeated("a@", n)),
    "repeat-a=": ("`a=` repeated", lambda n: repeated("a=", n)),
    "repeat-k=v": (
        "`k=v&` pairs",
        lambda n: filled(lambda r: f"k{r.randrange(99)}=v{r.randrange(99)}&", n),
    ),
    "base64-run": ("base64 without separators", lambda n: _b64(random.Random(1), n)),
    "digits": ("one run of digits", lambda n: repeated("0123456789", n)),
    "digits-spaced": ("digits and spaces", lambda n: repeated("1 2 3 4 5 6 7 8 9 0 ", n)),
    "digits-dotted": ("digits and dots", lambda n: repeated("12.34.", n)),
    "phone-like": ("`+1 415 555 0100 ` repeated", lambda n: repeated("+1 415 555 0100 ", n)),
    "names": ("`Dear Mr. ` repeated", lambda n: repeated("Dear Mr. ", n)),
    "upper-words": ("capital letters", lambda n: repeated("ABCDEFGHIJKLMNOPQRSTUVWXYZ", n)),
}
# JSON bodies through redact_body (application/json): deep nesting, and many tiny strings
BODIES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "json-realistic": ("the realistic texts as chat messages", lambda n: b""),  # filled in main
    "json-deep": (
        "nesting 500 deep, repeated",
        lambda n: (
            "[" + ",".join(['{"a":' * 500 + '"x"' + "}" * 500] * (n // 3500 + 1)) + "]"
        ).encode(),
    ),
    "json-tiny-strings": ('`"a",` repeated', lambda n: ("[" + '"a",' * (n // 4) + '"a"]').encode()),
    "json-tiny-keys": (
        '`"password":"x",` repeated',
        lambda n: ("{" + ",".join(f'"password{i}":"x"' for i in range(n // 16)) + "}").encode(),
    ),
}


def digest(findings: list) -> str:
    return hashlib.sha256(repr(findings).encode()).hexdigest()[:12]


def timed(run: Callable[[], object], rounds: int) -> tuple[float, object]:
    """The median of `rounds` runs (seconds), and what the run returned; after one run
    untimed (the first builds the keyword indexes and fills the caches)."""
    times, result = [], run()
    for _ in range(rounds):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=KB64, help="characters per shape")
    parser.add_argument("--rounds", type=int, default=5, help="runs per shape (median)")
    parser.add_argument("--texts", type=int, default=8, help="realistic 64 KB texts")
    parser.add_argument("--only", help="comma-separated shape names")
    parser.add_argument("--no-hyperscan", action="store_true", help="the fallback only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None

    profile = load_policy(ROOT / "policies").redaction_profiles["default"]
    hyperscan = detectors.hyperscan
    modes = ["python"] if args.no_hyperscan or hyperscan is None else ["hyperscan", "python"]

    samples = generate(0, 40, 600)
    realistic = prompt_texts(samples, args.texts, 0)
    cases: list[tuple[str, str, Callable[[int], list], str]] = []

    def text_case(make: Callable[[int], str]) -> Callable[[int], list]:
        return lambda n: [make(n)]

    cases.append(("realistic", f"{args.texts} prompt-like texts of 64 KB (redaction_bench)",
                  lambda n: realistic, "text"))  # fmt: skip
    for name, (what, make) in SHAPES.items():
        cases.append((name, what, text_case(make), "text"))
    messages = [{"role": "user", "content": t} for t in realistic[:2]]
    chat = json.dumps({"model": "m", "messages": messages}).encode()
    for name, (what, make) in BODIES.items():
        body = (lambda n: [chat]) if name == "json-realistic" else (lambda n, m=make: [m(n)])
        cases.append((name, what, body, "body"))

    rows = []
    for name, what, make, kind in cases:
        if only and name not in only:
            continue
        row = {"shape": name, "what": what}
        for mode in modes:
            detectors.hyperscan = hyperscan if mode == "hyperscan" else None
            for scale in (1, 4) if name not in ("realistic", "json-realistic") else (1,):
                items = make(args.size * scale)
                size = sum(len(i) for i in items)
                if kind == "text":

                    def run(items=items):
                        return [detectors.scan(t, profile.detectors) for t in items]
                else:

                    def run(items=items):
                        return [bodies.redact_body(b, "application/json", profile).findings
                                for b in items]  # fmt: skip

                rounds = args.rounds if scale == 1 else max(1, args.rounds // 2)
                seconds, found = timed(run, rounds)
                key = f"{mode}{'' if scale == 1 else '_x4'}"
                row[key] = {"chars": size, "mb_per_s": round(size / 1e6 / seconds, 2),
                            "ms_per_64k": round(seconds * 1e3 * KB64 / size, 2),
                            "findings": sum(len(f) for f in found),
                            "digest": digest(found)}  # fmt: skip
        detectors.hyperscan = hyperscan
        rows.append(row)
        print_row(row, modes)

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}",
        "command": "python bench/redaction_worst.py " + " ".join(argv or sys.argv[1:]),
        "modes": modes,
        "rows": rows,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def print_row(row: dict, modes: list[str]) -> None:
    if not getattr(print_row, "header", False):
        print_row.header = True  # type: ignore[attr-defined]
        cols = "".join(f"{m + ' MB/s':>16}{'ms/64K':>9}{'x4':>9}{'found':>8}" for m in modes)
        print(f"{'shape':<22}{cols}")
    cells = []
    for m in modes:
        one, four = row.get(m, {}), row.get(f"{m}_x4")
        cells.append(f"{one.get('mb_per_s', 0):>16.2f}{one.get('ms_per_64k', 0):>9.1f}"
                     f"{four['ms_per_64k'] if four else '':>9}"
                     f"{one.get('findings', 0):>8}")  # fmt: skip
    print(f"{row['shape']:<22}{''.join(cells)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
