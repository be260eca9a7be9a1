"""Clean prompts dense with numbers, synthesised from the seed: math questions, data exports
and engineering pastes.

Issue 21's filer found most false positives in exactly these (big integers taken for phones
and cards, decimals for IP addresses, hex for keys), and the real text of clean_text.py holds
few of them. Each prompt is made of facts and shapes written here: no copied text, no email
addresses, no names of people, only private, loopback and documentation IP addresses, and no
number made to pass Luhn and called a card. Numbers that happen to pass a checksum are left as
they fall, as they would in real arithmetic."""

from __future__ import annotations

import base64
import math
import random
import string
from collections.abc import Callable

Shape = Callable[[random.Random], str]


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _digits(rng: random.Random, n: int) -> int:
    return rng.randrange(10 ** (n - 1), 10**n)


def _date(rng: random.Random) -> str:
    return f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % p for p in range(2, math.isqrt(n) + 1))


def _prime(rng: random.Random, low: int, high: int) -> int:
    while not _is_prime(n := rng.randrange(low, high)):
        pass
    return n


def _private_ip(rng: random.Random) -> str:
    return rng.choice(
        [
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            f"127.0.0.{rng.randrange(1, 4)}",
            f"192.0.2.{rng.randrange(1, 255)}",
            f"198.51.100.{rng.randrange(1, 255)}",
            f"203.0.113.{rng.randrange(1, 255)}",
        ]
    )


# -- math --------------------------------------------------------------------------------------


def _product(rng: random.Random) -> str:
    a, b = _digits(rng, rng.randint(6, 10)), _digits(rng, rng.randint(6, 10))
    return rng.choice(
        [
            f"What is {a} × {b}? Show the long multiplication step by step.",
            f"My calculator says {a} * {b} = {a * b}. Can you check it by hand?",
            f"Compute {a * b} / {b} and explain why the result is an integer.",
            f"Is {a * b + rng.choice([0, 1])} divisible by {b}? Explain with the remainder.",
        ]
    )


def _factorize(rng: random.Random) -> str:
    primes = sorted(_prime(rng, 2, 10 ** rng.randint(2, 6)) for _ in range(rng.randint(2, 4)))
    n = math.prod(primes)
    return rng.choice(
        [
            f"Find the prime factorization of {n}.",
            f"I got {n} = {' × '.join(map(str, primes))}. Is that the full factorization?",
            f"Write a Python function that factors integers like {n} quickly. Trial division "
            f"up to {math.isqrt(n)} is too slow for me.",
        ]
    )


def _modular(rng: random.Random) -> str:
    m = rng.choice([1_000_000_007, 998_244_353, _prime(rng, 10**8, 10**9)])
    a, e = rng.randrange(2, 10**6), _digits(rng, rng.randint(9, 19))
    x = rng.randrange(2, m)
    return rng.choice(
        [
            f"Compute {a}^{e} mod {m} by square-and-multiply. The answer should be {pow(a, e, m)}.",
            f"Solve {a}x ≡ {x} (mod {m}). I know the inverse of {a} is {pow(a, -1, m)}.",
            f"Why does ({a} * {x}) % {m} give {a * x % m} in Python but a negative number in "
            f"C with 32-bit ints?",
            f"Chinese remainder theorem: x ≡ {a % 97} (mod 97), x ≡ {x % 101} (mod 101), "
            f"x ≡ {e % 103} (mod 103). Find the smallest positive x.",
        ]
    )


def _rsa_toy(rng: random.Random) -> str:
    p, q = _prime(rng, 10**5, 10**6), _prime(rng, 10**5, 10**6)
    phi = (p - 1) * (q - 1)
    e = 65537 if math.gcd(65537, phi) == 1 else 3
    while math.gcd(e, phi) != 1:
        e += 2
    d = pow(e, -1, phi)
    m = rng.randrange(2, 10**6)
    return (
        f"Textbook RSA homework: p = {p}, q = {q}, so n = {p * q} and φ(n) = {phi}. With "
        f"e = {e} I computed the exponent d = {d}. Encrypting m = {m} gives "
        f"c = {pow(m, e, p * q)}. Did I make a mistake anywhere?"
    )


def _matrix(rng: random.Random) -> str:
    n = rng.randint(3, 4)
    rows = [[rng.randrange(-99, 1000) for _ in range(n)] for _ in range(n)]
    body = "\n".join("[" + ", ".join(f"{v:>4}" for v in row) + "]" for row in rows)
    return rng.choice(["Find the determinant of\n\n", "Invert this matrix if you can:\n\n",
                       "What are the eigenvalues, roughly?\n\n"]) + body  # fmt: skip


def _statistics(rng: random.Random) -> str:
    groups = rng.sample(["control", "A", "B", "C", "placebo", "low dose", "high dose"], 3)
    head = "| group | n | mean | sd | median |\n|---|---|---|---|---|\n"
    rows = "".join(
        f"| {g} | {rng.randrange(20, 400)} | {rng.uniform(10, 200):.3f} | "
        f"{rng.uniform(0.5, 30):.3f} | {rng.uniform(10, 200):.2f} |\n"
        for g in groups
    )
    ask = rng.choice(["Is the difference between the groups significant? Which test?",
                      "Compute a 95 % confidence interval for each mean.",
                      "Explain what the sd column tells me here."])  # fmt: skip
    return head + rows + "\n" + ask


def _sequence(rng: random.Random) -> str:
    start = rng.randrange(40, 85)
    fib = [0, 1]
    while len(fib) < start + 6:
        fib.append(fib[-1] + fib[-2])
    k = rng.randrange(14, 22)
    twos = rng.randrange(30, 64)
    return rng.choice(
        [
            "Continue the sequence: "
            + ", ".join(map(str, fib[start : start + 5]))
            + ", ... and say what it is.",
            f"{k}! = {math.factorial(k)} and {k + 1}! = {math.factorial(k + 1)}. How many "
            f"trailing zeros does {k + 5}! have?",
            f"2^{twos} = {2**twos}. Why is 2^{twos} - 1 = {2**twos - 1} not prime "
            f"when {twos} is not prime?",
            "Triangular numbers: "
            + ", ".join(str(n * (n + 1) // 2) for n in range(10**5, 10**5 + 6))
            + ". Give a closed form.",
        ]
    )


def _physics(rng: random.Random) -> str:
    mass = rng.uniform(500, 3000)
    v = rng.uniform(5, 60)
    dist = rng.uniform(1.0, 9.9)
    return rng.choice(
        [
            f"A car of mass {mass:.1f} kg moves at {v:.2f} m/s. What is its kinetic energy in kJ?",
            f"Using G = 6.674×10^-11 N·m²/kg², M = 5.972e24 kg and r = {dist:.3f}e6 m, find the "
            f"orbital period of a satellite.",
            f"Light travels at 299792458 m/s. How long does it take to cover "
            f"{dist * 1.496:.4f}e11 m? Give the answer in minutes.",
            f"How many molecules are in {rng.uniform(0.1, 5):.3f} mol of water? "
            f"(N_A = 6.02214076e23 mol^-1, h = 6.62607015e-34 J·s is not needed.)",
            f"A resistor of {rng.randrange(100, 10000)} Ω carries {rng.uniform(0.001, 0.2):.4f} "
            f"A. Power dissipated?",
        ]
    )


def _probability(rng: random.Random) -> str:
    red, blue = rng.randrange(3, 12), rng.randrange(3, 12)
    n, k = rng.randrange(40, 60), rng.randrange(5, 7)
    flips = rng.randrange(8, 20)
    heads = rng.randrange(1, flips)
    return rng.choice(
        [
            f"A bag holds {red} red and {blue} blue balls. Two are drawn without replacement. "
            f"Is P(both red) = {red * (red - 1)}/{(red + blue) * (red + blue - 1)}?",
            f"A lottery draws {k} of {n}. The odds of winning are 1 in {math.comb(n, k)}, "
            f"or 1 in {math.comb(n, k):,}. How does that change with a bonus ball?",
            f"P(exactly {heads} heads in {flips} fair flips) = {math.comb(flips, heads)}/"
            f"{2**flips}. Simplify and give it as a decimal.",
            f"With {rng.randrange(20, 60)} people in a room, what is the chance that two share "
            f"a birthday? I get 1 - 365!/((365-n)! · 365^n).",
        ]
    )


def _big_numbers(rng: random.Random) -> str:
    n = _digits(rng, rng.randint(9, 19))
    m = _digits(rng, rng.randint(9, 19))
    return rng.choice(
        [
            f"Is {n | 1} prime? Which primality test would you use for a number this size?",
            f"gcd({n}, {m}) = {math.gcd(n, m)}? Walk me through the Euclidean algorithm.",
            f"Convert {n} to hexadecimal and binary.",
            f"Round {n} to three significant figures and write it in scientific notation.",
            f"What is the integer square root of {n}? Is {n} a perfect square?",
        ]
    )


_MATH: tuple[Shape, ...] = (_product, _factorize, _modular, _rsa_toy, _matrix, _statistics,
                            _sequence, _physics, _probability, _big_numbers)  # fmt: skip


def math_questions(rng: random.Random) -> str:
    """Arithmetic, number theory, linear algebra, statistics, physics and probability."""
    return rng.choice(_MATH)(rng)


# -- data exports ------------------------------------------------------------------------------


def _ean13(rng: random.Random) -> str:
    """A barcode with its own check digit (EAN's, not Luhn's: some pass Luhn, as in life)."""
    body = str(rng.choice([400, 401, 590, 871, 978, 979])) + "".join(
        rng.choice(string.digits) for _ in range(9)
    )
    return body + str(-sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10)


def _sku(rng: random.Random) -> str:
    return f"{rng.choice(['SKU', 'ART', 'P'])}-{rng.randrange(10**4, 10**6)}"


def _measurements_csv(rng: random.Random) -> str:
    rows = ["timestamp,sensor_id,temp_c,humidity_pct,pressure_hpa,battery_mv"]
    sensor = f"S-{rng.randrange(1, 999):04d}"
    day, hour = _date(rng), rng.randrange(18)
    for i in range(rng.randint(6, 14)):
        rows.append(
            f"{day}T{hour + i // 6:02d}:{i % 6 * 10:02d}:00Z,{sensor},"
            f"{rng.uniform(-5, 35):.2f},{rng.uniform(20, 95):.1f},{rng.uniform(980, 1040):.1f},"
            f"{rng.randrange(2900, 4200)}"
        )
    return "Plot the temperature from this export and flag any outliers:\n\n" + "\n".join(rows)


def _products_csv(rng: random.Random) -> str:
    rows = ["sku,ean,name,qty,unit_price,weight_kg"]
    for _ in range(rng.randint(5, 12)):
        name = rng.choice(["bolt M8", "washer", "cable 2m", "hinge", "bracket", "fuse 10A"])
        rows.append(
            f"{_sku(rng)},{_ean13(rng)},{name},"
            f"{rng.randrange(1, 5000)},{rng.uniform(0.05, 400):.2f},{rng.uniform(0.01, 12):.3f}"
        )
    return rng.choice(["Which products are below 100 units?\n\n",
                       "Sum the stock value per product:\n\n"]) + "\n".join(rows)  # fmt: skip


def _sql_dump(rng: random.Random) -> str:
    base = rng.randrange(10**17, 2 * 10**18)
    values = ",\n".join(
        f"  ({base + rng.randrange(10**12)}, {rng.randrange(1, 10**7)}, "
        f"'{_date(rng)} {_time(rng)}', {rng.uniform(1, 5000):.2f}, "
        f"'{rng.choice(['EUR', 'USD', 'GBP'])}', {rng.randrange(1, 5)})"
        for _ in range(rng.randint(4, 10))
    )
    return (
        "This dump fails to import into Postgres with a unique violation. Why?\n\n"
        "INSERT INTO orders (id, account_id, created_at, amount, currency, status) VALUES\n"
        f"{values};"
    )


def _api_response(rng: random.Random) -> str:
    items = ",\n".join(
        f'    {{"id": {rng.randrange(10**9, 10**19)}, "type": "shipment", "created_at": '
        f'"{_date(rng)}T{_time(rng)}Z", "weight_kg": {rng.uniform(0.1, 40):.2f}, '
        f'"origin": {{"lat": {rng.uniform(-60, 70):.6f}, "lon": {rng.uniform(-170, 170):.6f}}}, '
        f'"parcels": {rng.randrange(1, 9)}}}'
        for _ in range(rng.randint(2, 5))
    )
    return (
        "Write a pydantic model for this API response:\n\n"
        f'{{\n  "api_version": "{rng.randrange(2019, 2027)}-{rng.randrange(1, 13):02d}-01",\n'
        f'  "data": [\n{items}\n  ],\n  "meta": {{"page": {rng.randrange(1, 40)}, '
        f'"per_page": 50, "total": {rng.randrange(100, 10**6)}}}\n}}'
    )


def _versions(rng: random.Random) -> str:
    def semver() -> str:
        return f"{rng.randrange(0, 30)}.{rng.randrange(0, 40)}.{rng.randrange(0, 20)}"

    packages = rng.sample(["numpy", "pandas", "requests", "urllib3", "pydantic", "httpx",
                           "sqlalchemy", "pytest", "django", "flask"], 5)  # fmt: skip
    table = "\n".join(f"{p:<12}{semver():<10}{semver()}" for p in packages)
    return rng.choice(
        [
            f"Which of these upgrades are major?\n\nPackage     Installed Latest\n{table}",
            f'{{"name": "agent", "version": "{semver()}", "build": "{semver()}+'
            f'{rng.randrange(1000, 99999)}", "assembly_version": "{rng.randrange(1, 9)}.'
            f'{rng.randrange(0, 9)}.{rng.randrange(0, 9)}.{rng.randrange(0, 9)}", '
            f'"os": "10.0.{rng.randrange(17000, 26000)}.{rng.randrange(1, 5000)}"}}\n\n'
            f"Is this agent build supported?",
        ]
    )


def _coordinates(rng: random.Random) -> str:
    rows = ["station_id,lat,lon,elevation_m,observed_at,wind_ms,rain_mm"]
    for _ in range(rng.randint(4, 9)):
        rows.append(
            f"{rng.randrange(10000, 99999)},{rng.uniform(-50, 70):.4f},"
            f"{rng.uniform(-170, 170):.4f},"
            f"{rng.randrange(0, 3000)},{_date(rng)} {_time(rng)},{rng.uniform(0, 30):.1f},"
            f"{rng.uniform(0, 40):.1f}"
        )
    return "Which station is highest, and how far apart are the first two?\n\n" + "\n".join(rows)


def _metrics(rng: random.Random) -> str:
    stamp = rng.randrange(1_700_000_000_000, 1_800_000_000_000)
    lines = [
        "# TYPE http_requests_total counter",
        *(
            f'http_requests_total{{method="{m}",code="{c}"}} {rng.randrange(10**6)} {stamp}'
            for m, c in (("GET", 200), ("GET", 404), ("POST", 201), ("POST", 500))
        ),
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {rng.randrange(10**7, 10**10)}",
        f"process_start_time_seconds {stamp // 1000}.{rng.randrange(100)}",
    ]
    return "What is the error rate in this scrape?\n\n" + "\n".join(lines)


def _invoices(rng: random.Random) -> str:
    rows = ["invoice,date,net,vat,gross,due_days"]
    for _ in range(rng.randint(4, 10)):
        net = rng.uniform(10, 20000)
        rows.append(
            f"{rng.randrange(2019, 2027)}-{rng.randrange(10**5):05d},{_date(rng)},{net:.2f},"
            f"{net * 0.19:.2f},{net * 1.19:.2f},{rng.choice([14, 30, 60])}"
        )
    return "Check the VAT column of this export (19 %):\n\n" + "\n".join(rows)


def _object_listing(rng: random.Random) -> str:
    """S3's ListObjectsV2 answer: every object's "Key" is a path, its ETag an MD5."""
    objects = ",\n".join(
        f'    {{"Key": "exports/{_date(rng)}/part-{i:05d}.parquet", "LastModified": '
        f'"{_date(rng)}T{_time(rng)}.000Z", "ETag": "\\"{_hex(rng, 32)}\\"", "Size": '
        f'{rng.randrange(10**3, 10**9)}, "StorageClass": "STANDARD"}}'
        for i in range(rng.randint(2, 5))
    )
    return (
        "Which of these parts is the largest, and why are the ETags all different?\n\n"
        f'{{\n  "Name": "analytics-exports",\n  "Prefix": "exports/",\n  "KeyCount": '
        f'{rng.randrange(2, 6)},\n  "Contents": [\n{objects}\n  ]\n}}'
    )


_DATA: tuple[Shape, ...] = (_measurements_csv, _products_csv, _sql_dump, _api_response,
                            _versions, _coordinates, _metrics, _invoices,
                            _object_listing)  # fmt: skip


def data_exports(rng: random.Random) -> str:
    """CSV, SQL and JSON exports: ids, barcodes, amounts, dates, versions, coordinates."""
    return rng.choice(_DATA)(rng)


# -- engineering pastes ------------------------------------------------------------------------


def _hexdump(rng: random.Random) -> str:
    data = rng.choice([b"[server]\nport = 8080\nworkers = 4\nlog_level = info\n",
                       b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04",
                       b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x03\x00>\x00\x01\x00\x00\x00",
                       ])  # fmt: skip
    data += rng.randbytes(rng.randrange(16, 64))
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at : at + 16]
        words = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:08x}: {words:<40} {shown}")
    return "What kind of file starts like this?\n\n" + "\n".join(lines)


def _native_trace(rng: random.Random) -> str:
    stack = 0x7FFD00000000 + rng.randrange(16**8)
    text = 0x55D400000000 + rng.randrange(16**8)
    libc = 0x7F3A00000000 + rng.randrange(16**8)
    frames = [
        f"#0  0x{libc:016x} in __memmove_avx_unaligned_erms () from "
        "/lib/x86_64-linux-gnu/libc.so.6",
        f"#1  0x{text + 0x1A2B:016x} in parse_record (buf=0x{stack:x}, len={rng.randrange(99999)}) "
        f"at src/parser.c:{rng.randrange(40, 900)}",
        f"#2  0x{text + 0x2F10:016x} in main (argc=2, argv=0x{stack + 0x1F8:x}) at src/main.c:"
        f"{rng.randrange(10, 200)}",
    ]
    return (
        "Program received signal SIGSEGV, Segmentation fault.\n" + "\n".join(frames) + "\n"
        f"(gdb) info registers rip\nrip            0x{libc:x}      0x{libc:x} "
        f"<__memmove_avx_unaligned_erms+{rng.randrange(400)}>\n\nWhat went wrong?"
    )


def _go_panic(rng: random.Random) -> str:
    ptr = 0xC000000000 + rng.randrange(16**7)
    return (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        f"[signal SIGSEGV: segmentation violation code=0x1 addr=0x{rng.randrange(256):x} "
        f"pc=0x{0x4A0000 + rng.randrange(16**5):x}]\n\n"
        f"goroutine {rng.randrange(1, 5000)} [running]:\n"
        f"main.(*Store).Get(0x0, {{0x{ptr:x}, 0x{rng.randrange(64):x}}})\n"
        f"\t/src/store/store.go:{rng.randrange(20, 400)} +0x{rng.randrange(16**3):x}\n"
        f"main.handler({{0x{ptr + 0x3A0:x}, 0x{ptr + 0x7C0:x}}}, 0x{ptr + 0x100:x})\n"
        f"\t/src/main.go:{rng.randrange(20, 400)} +0x{rng.randrange(16**3):x}\n"
        f"exit status 2\n\nWhy is the receiver nil?"
    )


def _java_trace(rng: random.Random) -> str:
    return (
        f"{_date(rng)} {_time(rng)}.{rng.randrange(1000):03d} ERROR [http-nio-8080-exec-"
        f"{rng.randrange(1, 20)}] o.a.c.c.C.[.[.[/].[dispatcherServlet]\n"
        f'java.lang.NumberFormatException: For input string: "{rng.randrange(10**10, 10**12)}"\n'
        f"\tat java.base/java.lang.Integer.parseInt(Integer.java:{rng.randrange(600, 800)})\n"
        f"\tat com.example.billing.InvoiceService.load(InvoiceService.java:"
        f"{rng.randrange(30, 300)})\n"
        f"\tat com.example.billing.InvoiceController.get(InvoiceController.java:"
        f"{rng.randrange(30, 300)})\n"
        f"\t... {rng.randrange(20, 90)} common frames omitted\n\nHow do I fix this parse error?"
    )


def _k8s_manifest(rng: random.Random) -> str:
    app = rng.choice(["billing", "search", "gateway", "worker"])
    return (
        "Why does this pod keep getting OOMKilled?\n\n"
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n"
        f"  namespace: prod\n  uid: {_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-"
        f'a{_hex(rng, 3)}-{_hex(rng, 12)}\n  resourceVersion: "{rng.randrange(10**6, 10**9)}"\n'
        f"  generation: {rng.randrange(1, 80)}\n"
        f'  creationTimestamp: "{_date(rng)}T{_time(rng)}Z"\nspec:\n'
        f"  replicas: {rng.randrange(1, 6)}\n  template:\n    spec:\n      containers:\n"
        f"        - name: {app}\n"
        f"          image: registry.internal/{app}@sha256:{_hex(rng, 64)}\n"
        f"          resources:\n            requests: {{cpu: {rng.randrange(50, 1000)}m, "
        f"memory: {rng.randrange(64, 2048)}Mi}}\n            limits: {{memory: "
        f"{rng.randrange(256, 4096)}Mi}}\n          env:\n            - name: DB_PASSWORD\n"
        f"              valueFrom:\n                secretKeyRef: {{name: {app}-db, key: "
        f"password}}\n          ports:\n            - containerPort: {rng.randrange(3000, 9000)}"
    )


def _docker_ps(rng: random.Random) -> str:
    rows = ["CONTAINER ID   IMAGE                 COMMAND                  CREATED        "
            "STATUS        PORTS                    NAMES"]  # fmt: skip
    for name in rng.sample(["web", "db", "cache", "queue", "proxy", "cron"], 4):
        port = rng.randrange(3000, 9999)
        rows.append(
            f"{_hex(rng, 12)}   {name}:{rng.randrange(1, 17)}.{rng.randrange(10)}     "
            f'"docker-entrypoint.s…"   {rng.randrange(2, 59)} hours ago   Up '
            f"{rng.randrange(2, 59)} hours   0.0.0.0:{port}->{port}/tcp   app-{name}-1"
        )
    return "One container restarts every few minutes. Which one?\n\n" + "\n".join(rows)


def _git_log(rng: random.Random) -> str:
    subjects = ["fix: retry on 503", "feat: export to CSV", "chore: bump deps",
                "docs: usage", "refactor: split parser", "test: cover empty input",
                "perf: cache lookups"]  # fmt: skip
    lines = [
        f"{_hex(rng, 40)} {_date(rng)} {_time(rng)} +0000 {subject}"
        for subject in rng.sample(subjects, rng.randint(4, 7))
    ]
    return "Turn this into a changelog:\n\n$ git log --format='%H %ad %s' --date=iso\n" + (
        "\n".join(lines)
    )


def _test_output(rng: random.Random) -> str:
    tests = [f"tests/test_{m}.py::test_{c}" for m, c in (("parser", "empty"), ("api", "paging"),
             ("store", "expiry"), ("cli", "help"), ("export", "csv"))]  # fmt: skip
    slow = "\n".join(f"{rng.uniform(0.1, 9):.2f}s call     {t}" for t in rng.sample(tests, 3))
    return (
        f"============================= test session starts ==============================\n"
        f"platform linux -- Python 3.12.{rng.randrange(1, 9)}, pytest-8.{rng.randrange(4)}."
        f"{rng.randrange(5)}, pluggy-1.5.0\ncollected {rng.randrange(100, 3000)} items\n\n"
        f"============================= slowest 3 durations ==============================\n"
        f"{slow}\n=========== {rng.randrange(100, 3000)} passed, {rng.randrange(1, 9)} skipped "
        f"in {rng.uniform(5, 600):.2f}s ({rng.randrange(0, 10)}:{rng.randrange(60):02d}) "
        f"===========\n\nHow do I make the slow ones faster?"
    )


def _sockets(rng: random.Random) -> str:
    rows = ["State   Recv-Q Send-Q  Local Address:Port    Peer Address:Port  Process"]
    for proc, port in rng.sample([("postgres", 5432), ("redis-server", 6379), ("nginx", 443),
                                  ("sshd", 22), ("node", 3000), ("java", 8080)], 4):  # fmt: skip
        rows.append(
            f"LISTEN  0      {rng.choice([128, 511, 4096])}   {_private_ip(rng)}:{port}       "
            f'0.0.0.0:*    users:(("{proc}",pid={rng.randrange(300, 99999)},fd='
            f"{rng.randrange(3, 30)}))"
        )
    for _ in range(rng.randint(2, 5)):
        rows.append(
            f"ESTAB   0      0       {_private_ip(rng)}:{rng.choice([443, 5432, 6379])}    "
            f"{_private_ip(rng)}:{rng.randrange(32768, 61000)}"
        )
    return "$ ss -tanp\n" + "\n".join(rows) + "\n\nWhich process accepts outside connections?"


def _ip_addr(rng: random.Random) -> str:
    mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
    return (
        f"2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP qlen 1000\n"
        f"    link/ether {mac} brd ff:ff:ff:ff:ff:ff\n"
        f"    inet {_private_ip(rng)}/24 brd 192.168.1.255 scope global dynamic eth0\n"
        f"       valid_lft {rng.randrange(1000, 86400)}sec preferred_lft "
        f"{rng.randrange(1000, 86400)}sec\n"
        f"    inet6 fe80::{_hex(rng, 4)}:{_hex(rng, 2)}ff:fe{_hex(rng, 2)}:{_hex(rng, 4)}/64 "
        f"scope link\n\nWhy has this interface no global IPv6 address?"
    )


def _base64_config(rng: random.Random) -> str:
    banner = f"Staging cluster {rng.randrange(1, 9)} - changes are wiped nightly".encode()
    flags = f'{{"new_checkout": {rng.choice(["true", "false"])}, "max_items": '
    flags += f"{rng.randrange(10, 99)}}}"
    return (
        "Decode these and tell me what they configure:\n\n"
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ui-settings\nbinaryData:\n"
        f"  motd: {base64.b64encode(banner).decode()}\n"
        f"  flags.json: {base64.b64encode(flags.encode()).decode()}\n"
    )


def _terraform(rng: random.Random) -> str:
    account = _digits(rng, 12)
    return (
        "Terraform wants to replace this instance. Why?\n\n"
        "  # aws_instance.web must be replaced\n"
        '-/+ resource "aws_instance" "web" {\n'
        f'      ~ arn = "arn:aws:ec2:eu-west-1:{account}:instance/i-0{_hex(rng, 16)}" '
        "-> (known after apply)\n"
        f'      ~ id  = "i-0{_hex(rng, 16)}" -> (known after apply)\n'
        f'      ~ ami = "ami-0{_hex(rng, 16)}" -> "ami-0{_hex(rng, 16)}" # forces replacement\n'
        f'        private_ip = "{_private_ip(rng)}"\n'
        f'        subnet_id  = "subnet-0{_hex(rng, 16)}"\n    }}\n'
        f"Plan: 1 to add, 0 to change, 1 to destroy."
    )


def _settings(rng: random.Random) -> str:
    """Settings whose names hold key, token or password, and whose values are no secret."""
    return (
        "Which of these settings can I drop?\n\n"
        f"CACHE_KEY_PREFIX=orders:v{rng.randrange(1, 9)}\n"
        f"MAX_TOKENS={rng.choice([1024, 2048, 4096, 8192])}\n"
        f"TOKEN_URL=https://auth.internal/oauth2/token\n"
        f"PRIMARY_KEY_COLUMN=id\nSSH_PUBLIC_KEY_PATH=/etc/ssh/ssh_host_ed25519_key.pub\n"
        f"PASSWORD_MIN_LENGTH={rng.randrange(8, 20)}\nKEY_ROTATION_DAYS={rng.choice([30, 90])}\n"
        f"SESSION_TTL_SECONDS={rng.randrange(600, 86400)}\nSORT_KEY=created_at\n"
        f"PARTITION_KEY=tenant_id\nTOKENIZER=cl100k_base\n"
    )


def _http_headers(rng: random.Random) -> str:
    """An S3 answer's headers: request ids, an ETag and a digest, none of them a credential."""
    digest = base64.b64encode(rng.randbytes(32)).decode()
    return (
        "Why does the CDN not cache this response?\n\n"
        f"HTTP/1.1 200 OK\nx-amz-id-2: {base64.b64encode(rng.randbytes(56)).decode()}\n"
        f"x-amz-request-id: {_hex(rng, 16).upper()}\n"
        f"Date: Fri, {rng.randrange(1, 29):02d} Mar 2026 {_time(rng)} GMT\n"
        f'ETag: "{_hex(rng, 32)}"\nContent-Digest: sha-256=:{digest}:\n'
        f"x-amz-version-id: {_hex(rng, 32)}\nCache-Control: private, max-age=0\n"
        f"Content-Length: {rng.randrange(10**3, 10**8)}\nServer: AmazonS3"
    )


def _authorized_keys(rng: random.Random) -> str:
    """Public keys: what they are for is to be shown."""
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + rng.randbytes(32))
    return (
        "Is this authorized_keys line restricted enough?\n\n"
        f'from="10.{rng.randrange(256)}.0.0/16",no-pty,no-agent-forwarding ssh-ed25519 '
        f"{blob.decode()} ci-deploy\n\nThe host key fingerprint is SHA256:"
        f"{base64.b64encode(rng.randbytes(32)).decode().rstrip('=')}."
    )


_ENGINEERING: tuple[Shape, ...] = (_hexdump, _native_trace, _go_panic, _java_trace,
                                   _k8s_manifest, _docker_ps, _git_log, _test_output, _sockets,
                                   _ip_addr, _base64_config, _terraform, _settings,
                                   _http_headers, _authorized_keys)  # fmt: skip


def engineering_pastes(rng: random.Random) -> str:
    """Dumps, traces, manifests and command output engineers paste into a chat."""
    return rng.choice(_ENGINEERING)(rng)
