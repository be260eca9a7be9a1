"""`aiwarden`: the administrator's command line."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from proxy import __version__, ca, options
from proxy.coach.pages import duration
from proxy.decide.engine import Engine
from proxy.decide.llm_shape import describe, inspect_body
from proxy.decide.verdict import Decision, Mode
from proxy.identity.who import GroupsUnknown, Who
from proxy.lists.coverage import ListCoverage, false_positives, measure
from proxy.lists.formats import (
    FORMATS,
    ListError,
    ParsedList,
    guess_format,
    read_drops,
    read_list,
    render,
)
from proxy.policy.loader import load_policy
from proxy.policy.model import Policy
from proxy.policy.normalize import BadHost, split_url
from proxy.policy.yamlsource import PolicyError

EXIT_OK, EXIT_INVALID = 0, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # URLs after options (`explain URL --method POST URL2`) are still URLs
        if getattr(args, "command", None) is not cmd_explain or any(
            x.startswith("-") for x in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.urls.extend(extra)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_INVALID
    try:
        return args.command(args)
    except BrokenPipeError:  # `aiwarden catalog --json | head`: the reader had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiwarden",
        description="Egress proxy that blocks or redacts traffic to external AI services.",
    )
    parser.add_argument("--version", action="version", version=f"aiwarden {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    def add(name: str, func, help: str, policy: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(command=func)
        if not policy:
            return p
        options.add_flag(p, "--policy")
        return p

    add("check", cmd_check, "validate the policy and catalog; exit 2 listing every error")

    p = add("catalog", cmd_catalog, "list the catalogued AI services, their hosts and categories")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument(
        "--summary",
        action="store_true",
        help="counts by category, by vendor country and by kind of source, and the oldest check",
    )
    _catalog_actions(p)

    p = add("explain", cmd_explain, "show the decision the policy makes for each URL")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--method", default="GET", help="HTTP method (default GET)")
    p.add_argument("--client", default="127.0.0.1", help="client IP address (default 127.0.0.1)")
    p.add_argument("--user", help="authenticated user name")
    p.add_argument(
        "--groups",
        default="",
        help="the user's directory groups, comma-separated, as an identity source names them "
        "(default: looked up, when the policy names a directory)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per URL, a line each")
    p.add_argument(
        "--body",
        metavar="FILE",
        help="a request body ('-': stdin), to see whether it is an LLM API call that "
        "unlisted_ai decides on hosts nothing names",
    )

    p = add("redact", cmd_redact, "redact a request body read from stdin, as the proxy would")
    p.add_argument("--url", help="where the body would be sent (required without --jsonl)")
    p.add_argument("--method", default="POST", help="HTTP method (default POST)")
    p.add_argument(
        "--profile",
        help="redaction profile (default: the one the policy applies to this URL, else 'default')",
    )
    p.add_argument(
        "--content-type",
        default="application/json",
        help="the body's Content-Type (default application/json)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="also list what was found, by type and position (never the values), on stderr",
    )
    p.add_argument(
        "--jsonl",
        action="store_true",
        help="scan texts instead of a body: each stdin line is a JSON object "
        '{"text": "...", "id": ...} ("id" optional, echoed back); each gets one stdout line '
        '{"id": ..., "findings": [{"kind", "start", "end"}]} with character offsets into the '
        'text, or {"line": N, "error": "..."} for a line that is not such an object (then '
        "the exit status is 2). Line by line, as they come. Profile: --profile, else the one "
        "the policy applies to --url, else 'default'",
    )

    p = add(
        "report",
        cmd_report,
        "who tried which AI services: a report from the audit log",
        policy=False,
    )
    p.add_argument("--audit-log", required=True, type=Path, metavar="FILE")
    p.add_argument("--since", metavar="DURATION", help="only the last 30m, 24h, 7d...")
    p.add_argument("--json", action="store_true", help="the report as one JSON document")
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the report as a self-contained HTML page",
    )

    p = add(
        "discover",
        cmd_discover,
        "rank the domains the proxy relayed that look like AI services the catalog does not "
        "know, with catalog entries to review (from the audit log's discovery lines)",
    )
    p.add_argument(
        "audit_logs", nargs="+", type=Path, metavar="AUDIT_LOG",
        help="audit log files; rotated and gzip-compressed ones too",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument(
        "--top", type=int, default=25, metavar="N",
        help="list the N highest-ranked domains (default 25; 0: every one)",
    )  # fmt: skip
    p.add_argument(
        "--all", action="store_true",
        help="also list, last, the domains without any sign of being an AI service",
    )  # fmt: skip

    p = add("pac", cmd_pac, "print a proxy auto-config (PAC) file for the policy")
    p.add_argument(
        "--proxy",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a proxy address; https://HOST:PORT for one clients reach over TLS (PAC HTTPS); "
        "give several for failover, in order",
    )
    p.add_argument(
        "--mode",
        choices=("all", "ai-only"),
        default="all",
        help="all: everything through the proxy but local and bypassed hosts "
        "(default); ai-only: only AI services",
    )
    p.add_argument(
        "--bypass",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="a domain sent DIRECT in mode all (AI hosts never are)",
    )
    p.add_argument(
        "--spread", action="store_true", help="rotate the proxies by a stable hash of the host"
    )

    options.add_run_flags(add("run", cmd_run, "run the proxy", policy=False))
    p = add("options", cmd_options, "the options of `aiwarden run` as a Markdown table", False)
    p.add_argument(
        "--readme", type=Path, metavar="FILE",
        help="write the table into FILE between its markers instead (README.md)",
    )  # fmt: skip

    p = add(
        "ca", None, "create, show or import the CA that signs intercepted connections", policy=False
    )
    ca_sub = p.add_subparsers(metavar="ACTION", required=True)
    init = ca_sub.add_parser("init", help="create a new root CA")
    init.set_defaults(command=cmd_ca_init)
    init.add_argument("--dir", default="certs", help="CA directory (default certs/)")
    init.add_argument("--name", default=ca.DEFAULT_NAME, help="the CA's common name")
    init.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    show = ca_sub.add_parser("show", help="subject, SHA-256 fingerprint and expiry")
    show.set_defaults(command=cmd_ca_show)
    show.add_argument("--dir", default="certs", help="CA directory (default certs/)")
    imp = ca_sub.add_parser("import", help="use an existing corporate CA or intermediate")
    imp.set_defaults(command=cmd_ca_import)
    imp.add_argument("--dir", default="certs", help="CA directory (default certs/)")
    imp.add_argument(
        "--cert",
        required=True,
        type=Path,
        help="PEM certificate, followed by its chain up to the root",
    )
    imp.add_argument("--key", required=True, type=Path, help="its unencrypted PEM private key")
    imp.add_argument("--force", action="store_true", help="replace an existing CA")
    return parser


def _catalog_actions(catalog: argparse.ArgumentParser) -> None:
    """`catalog ACTION`: optional, so that plain `aiwarden catalog` still lists the services."""
    actions = catalog.add_subparsers(
        metavar="ACTION", help="optional: without one, list the services"
    )
    about = "share of community AI-domain lists the catalog recognises, and what it misses"
    p = actions.add_parser("coverage", help=about, description=about)
    p.set_defaults(command=cmd_catalog_coverage)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="lists to measure")
    p.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="the lists' syntax (default: guessed from each file)",
    )
    p.add_argument(  # SUPPRESS: `catalog --policy P coverage` keeps P
        "--policy", metavar="DIR", default=argparse.SUPPRESS,
        help="policy directory or file (default: $AIWARDEN_POLICY or ./policies)",
    )  # fmt: skip
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a list of non-AI domains: its entries the policy matches are false positives",
    )
    p.add_argument(
        "--drops",
        type=Path,
        metavar="FILE",
        help="entries not to count (list<TAB>entry<TAB>reason; default for reference lists: "
        "drops-public.tsv beside the list, if there is one)",
    )
    p.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="one JSON document"
    )
    _import_arguments(actions)


IMPORT_FORMATS = ("v2fly", "adguard", "abp", "hosts", "plain")
IMPORT_EPILOG = """\
The policy includes the directory beside the curated catalog, and `aiwarden check` then
validates both together:

  catalog: [catalog, imported]      # in policy.yaml

One file per list (named after the list's file), one service per label of the list (v2fly
include or comment heading, AdGuard service id, section comment of an ABP, hosts or plain list,
else the file's name), with hosts d and *.d for a domain entry and the exact host for a
full:/hosts entry. What the curated catalog already recognises is skipped; entries that would
catch a shared host (a curated path-scoped host such as huggingface.co or api.github.com, a
domain of which the curated catalog claims only some hosts, a public or shared-hosting suffix
such as github.io, a host of a --negative list) or v2fly @ads tracking hosts are reported, not
imported. Importing the same list again rewrites nothing.
Exit 0 when done (conflicts are reported, not errors), 2 on a mistake or an invalid result."""


def _import_arguments(actions) -> None:
    about = "turn a community AI-domain list into catalog YAML for the policy to include"
    p = actions.add_parser(
        "import",
        help=about,
        description=about,
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(command=cmd_catalog_import)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="lists to import")
    p.add_argument(
        "--format",
        required=True,
        metavar="{" + ",".join(IMPORT_FORMATS) + "}",
        help="the lists' syntax (required: an import changes what is blocked, so it is not "
        "guessed); v2fly include:NAME is read from the file NAME beside the list",
    )
    p.add_argument(  # SUPPRESS: `catalog --policy P import` keeps P
        "--policy", metavar="DIR", default=argparse.SUPPRESS,
        help="policy directory or file whose catalog is the curated one "
             "(default: $AIWARDEN_POLICY or ./policies)",
    )  # fmt: skip
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where the imported files go (default: imported/ beside the policy file; "
        "created if absent); never counted as curated",
    )
    p.add_argument(
        "--category",
        default="chat",
        metavar="CATEGORY",
        help="the category of every imported service (default: chat). The lists say only "
        "that a domain is AI, not what it does, and rules decide by category: choose the "
        "one your policy blocks for such services",
    )
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a list of ordinary domains (any list syntax, guessed, or the reference TSV): "
        "an entry that would catch one of them is a conflict, not imported",
    )
    p.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        help="the 'checked' date of new and changed services (default: today)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    p.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="one JSON document"
    )


def cmd_redact(args: argparse.Namespace) -> int:
    from proxy.redact.bodies import Unparseable, redact_body

    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    if not args.url and not args.jsonl:
        print("aiwarden redact: --url is required (or --jsonl to scan texts)", file=sys.stderr)
        return EXIT_INVALID
    name = args.profile
    if name is None and not args.url:
        name = "default"
    if name is None:
        try:
            _scheme, host, path, _port = split_url(args.url)
        except BadHost as e:
            print(f"aiwarden redact: {e}", file=sys.stderr)
            return EXIT_INVALID
        decision = Engine(policy).decide_request(args.method, host, path)
        name = decision.profile or "default"
    profile = policy.redaction_profiles.get(name)
    if profile is None:
        known = ", ".join(policy.redaction_profiles) or "none"
        print(
            f"aiwarden redact: no redaction profile {name!r} (profiles: {known})", file=sys.stderr
        )
        return EXIT_INVALID
    if args.jsonl:
        return _scan_lines(profile, sys.stdin.buffer, sys.stdout)
    try:
        result = redact_body(sys.stdin.buffer.read(), args.content_type, profile)
    except Unparseable as e:
        print(
            f"aiwarden redact: cannot read the body: {e} (on_unparseable is "
            f"{profile.on_unparseable})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    sys.stdout.buffer.write(result.body)
    sys.stdout.flush()
    if args.explain:
        print(f"profile {name}: {len(result.findings)} found", file=sys.stderr)
        for where, kind, start, end in result.findings:
            print(f"  {kind:<26} {where} [{start}:{end}]", file=sys.stderr)
    return EXIT_OK


def _scan_lines(profile, lines: Iterable[bytes], out: TextIO) -> int:
    """`redact --jsonl`: one answer per input line, written as each line arrives (so a
    caller can feed it one text at a time); a bad line is answered with its error, and
    makes the exit status EXIT_INVALID once all lines are done."""
    from proxy.redact.detectors import scan

    bad = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        item, error = _text_item(raw)
        if error is None:
            findings = scan(item["text"], profile.detectors)
            answer = {"findings": [{"kind": f.type, "start": f.start, "end": f.end}
                                   for f in findings]}  # fmt: skip
        else:
            bad += 1
            print(f"aiwarden redact: line {number}: {error}", file=sys.stderr)
            answer = {"line": number, "error": error}
        if isinstance(item, dict) and "id" in item:
            answer = {"id": item["id"], **answer}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return EXIT_INVALID if bad else EXIT_OK


def _text_item(raw: bytes) -> tuple[object, str | None]:
    """The decoded line, and what is wrong with it (never quoting the text)."""
    try:
        item = json.loads(raw)
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except ValueError as e:
        return None, f"not JSON ({e})"
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return item, 'not a JSON object with a "text" string'
    return item, None


def cmd_report(args: argparse.Namespace) -> int:
    from proxy.observe import report

    try:
        since = report.parse_since(args.since) if args.since else None
        data = report.build(report.read_lines(args.audit_log), since)
    except ValueError as e:
        print(f"aiwarden report: {e}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as e:
        print(f"aiwarden report: {args.audit_log}: {e.strerror or e}", file=sys.stderr)
        return EXIT_INVALID
    if args.html:
        args.html.write_text(report.render_html(data), encoding="utf-8")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(report.render_text(data), end="")
    return EXIT_OK


def cmd_discover(args: argparse.Namespace) -> int:
    from proxy.observe import discover

    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    try:
        log = discover.read(args.audit_logs)
    except (OSError, EOFError) as e:  # EOFError: a gzip file cut short
        name = getattr(e, "filename", None) or ", ".join(map(str, args.audit_logs))
        print(f"aiwarden discover: {name}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return EXIT_INVALID
    result = discover.discover(log, policy)
    today = discover.today()
    if args.json:
        print(json.dumps(discover.render_json(result, args.top, args.all, today), indent=2))
    else:
        print(discover.render_text(result, args.top, args.all, today), end="")
    return EXIT_OK


def cmd_pac(args: argparse.Namespace) -> int:
    from proxy import pac

    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    try:
        script = pac.render(policy, args.proxy, args.mode, args.bypass, args.spread)
    except ValueError as e:
        print(f"aiwarden pac: {e}", file=sys.stderr)
        return EXIT_INVALID
    print(script, end="")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from proxy.mitm.compat import import_only_the_addons_used

    import_only_the_addons_used()  # before serve.run imports mitmproxy's master
    from proxy.serve.run import check_flags, run

    flags = check_flags(args)  # a flag's typo first: it costs nothing to check
    if isinstance(flags, str):
        print(f"aiwarden run: {flags}", file=sys.stderr)
        return EXIT_INVALID
    policy = _load(args)  # report every policy error before starting anything
    if policy is None:
        return EXIT_INVALID
    return run(args, flags, policy)


def cmd_options(args: argparse.Namespace) -> int:
    if args.readme is None:
        print(options.markdown(), end="")
        return EXIT_OK
    try:
        changed = options.update_readme(args.readme)
    except (OSError, ValueError) as e:
        print(f"aiwarden options: {e}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.readme}: {'updated' if changed else 'up to date'}")
    return EXIT_OK


def cmd_ca_init(args: argparse.Namespace) -> int:
    return _ca(lambda: ca.init(Path(args.dir), args.name, args.days, args.force), args.dir)


def cmd_ca_show(args: argparse.Namespace) -> int:
    return _ca(lambda: ca.info(Path(args.dir)), args.dir)


def cmd_ca_import(args: argparse.Namespace) -> int:
    return _ca(lambda: ca.import_ca(Path(args.dir), args.cert, args.key, args.force), args.dir)


def _ca(action, directory: str) -> int:
    try:
        info = action()
    except ca.CAError as e:
        print(f"aiwarden ca: {e}", file=sys.stderr)
        return EXIT_INVALID
    print(f"certificate: {Path(directory) / ca.PUBLIC_CERT}  (install this on clients)")
    print(f"subject:     {info.subject}")
    print(f"sha256:      {info.fingerprint_sha256}")
    print(f"valid:       {info.not_before:%Y-%m-%d} to {info.not_after:%Y-%m-%d}")
    if info.chain_length > 1:
        print(f"chain:       {info.chain_length} certificates")
    return EXIT_OK


def _load(args: argparse.Namespace) -> Policy | None:
    try:
        return load_policy(args.policy)
    except PolicyError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        count = len(e.problems)
        print(f"{count} error{'s' * (count != 1)}; the policy was not loaded", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    hosts = sum(len(s.hosts) for s in policy.services)
    rules = len(policy.rules)
    print(
        f"OK {policy.files[0]}: {rules} rule{'s' * (rules != 1)}, "
        f"{len(policy.services)} services, {hosts} host patterns, "
        f"digest {policy.digest[:12]}"
    )
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    services = sorted(policy.services, key=lambda s: (s.category, s.id))
    if args.summary:
        return _catalog_summary(services, args.json)
    if args.json:
        json.dump(
            [
                {
                    "id": s.id,
                    "name": s.name,
                    "vendor": s.vendor,
                    "country": s.country,
                    "category": s.category,
                    "hosts": [h.text for h in s.hosts],
                    "paths": list(s.paths),
                    "activities": list(dict.fromkeys(a.name for a in s.activities)),
                    "source": s.source,
                    "checked": s.checked,
                }
                for s in services
            ],
            sys.stdout,
            indent=2,
        )
        print()
        return EXIT_OK
    width = max(len(s.id) for s in services)
    print(f"{'SERVICE':<{width}}  {'CATEGORY':<14}  {'VENDOR':<12}  HOSTS")
    for s in services:
        hosts = ", ".join(h.text for h in s.hosts)
        if s.paths:
            hosts += f"  (only {', '.join(s.paths)})"
        print(f"{s.id:<{width}}  {s.category:<14}  {s.vendor[:12]:<12}  {hosts}")
    print(f"{len(services)} services")
    return EXIT_OK


def _catalog_summary(services: list, as_json: bool) -> int:
    """What the catalog holds, in the numbers a reviewer asks for."""
    from collections import Counter

    unconfirmed = sum(1 for s in services if "unconfirmed" in s.source.lower())
    checked = sorted(s.checked for s in services if s.checked)
    summary = {
        "services": len(services),
        "host_patterns": sum(len(s.hosts) for s in services),
        "categories": dict(Counter(s.category for s in services).most_common()),
        "countries": dict(Counter(s.country or "unknown" for s in services).most_common()),
        "sources": {"read": len(services) - unconfirmed, "unconfirmed": unconfirmed},
        "oldest_check": checked[0] if checked else None,
        "unchecked": len(services) - len(checked),
    }
    if as_json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"{summary['services']} services, {summary['host_patterns']} host patterns")
    for key in ("categories", "countries"):
        counts = ", ".join(f"{k} {v}" for k, v in summary[key].items())
        print(f"{key}: {counts}")
    print(
        f"sources: {summary['sources']['read']} from a list or document, "
        f"{unconfirmed} general knowledge, unconfirmed"
    )
    print(f"checked: oldest {summary['oldest_check']}, {summary['unchecked']} never")
    return EXIT_OK


def cmd_catalog_coverage(args: argparse.Namespace) -> int:
    try:
        lists, negatives, drops_used = _read_lists(args)
    except ListError as e:
        print(f"aiwarden catalog coverage: {e}", file=sys.stderr)
        return EXIT_INVALID
    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    engine = Engine(policy)
    measured: list[tuple[ListCoverage, ParsedList]] = []
    for parsed, drops in lists:
        measured.extend((cov, parsed) for cov in measure(engine, parsed, drops))
    wrong = [(parsed, false_positives(engine, parsed)) for parsed in negatives]
    if args.json:
        json.dump(_coverage_record(measured, wrong, drops_used), sys.stdout, indent=2)
        print()
        return EXIT_OK
    for cov, parsed in measured:
        dropped = f", {cov.dropped} dropped" if cov.dropped else ""
        print(
            f"{cov.name} ({parsed.format}, {parsed.path}): {cov.recognised}/{len(cov.counted)} "
            f"recognised ({cov.share:.1%}){dropped}"
        )
        for entry in cov.missing:
            print(f"  {render(entry, parsed.format)}")
    for path in sorted({str(p) for p in drops_used}):
        print(f"dropped entries are those named in {path}")
    for parsed, found in wrong:
        print(
            f"{parsed.path} (negative, {parsed.format}): {len(found)} of "
            f"{len(parsed.entries)} entries matched (false positives)"
        )
        for fp in found:
            by = fp.service or f"blocked ({fp.action})"
            print(f"  {render(fp.entry, parsed.format)}  ->  {by}  ({fp.url})")
    notes = [note for parsed, _ in lists for note in parsed.notes]
    notes += [note for parsed in negatives for note in parsed.notes]
    for note in notes:
        print(f"note: {note}")
    return EXIT_OK


def _read_lists(
    args: argparse.Namespace,
) -> tuple[list[tuple[ParsedList, dict[str, set[str]]]], list[ParsedList], list[Path]]:
    """Every list named, read before the policy so a mistyped path fails fast."""
    explicit = read_drops(args.drops) if args.drops else None
    lists, used = [], []
    for path in args.files:
        parsed = _read_one(path, args.format)
        drops = explicit
        if args.drops:
            used.append(args.drops)
        elif parsed.format == "reference" and (path.parent / "drops-public.tsv").is_file():
            beside = path.parent / "drops-public.tsv"
            if path.resolve() == beside.resolve():
                raise ListError(f"{path}: a drops file, not a list (it is read automatically)")
            drops = read_drops(beside)
            used.append(beside)
        lists.append((parsed, drops or {}))
    negatives = [_read_one(path, args.format) for path in args.negative]
    return lists, negatives, used


def _read_one(path: Path, fmt: str) -> ParsedList:
    if fmt == "auto":
        try:
            fmt = guess_format(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ListError(f"{path}: cannot read: {reason}") from None
    return read_list(path, fmt)


def _coverage_record(
    measured: list[tuple[ListCoverage, ParsedList]],
    wrong: list[tuple[ParsedList, list]],
    drops_used: list[Path],
) -> dict[str, object]:
    return {
        "lists": [
            {
                "list": cov.name,
                "file": str(parsed.path),
                "format": parsed.format,
                "entries": len(cov.counted),
                "recognised": cov.recognised,
                "share": round(cov.share, 4),
                "dropped": cov.dropped,
                "missing": [
                    {"entry": render(e, parsed.format).split("\t")[0], "label": e.label}
                    for e in cov.missing
                ],
            }
            for cov, parsed in measured
        ],
        "drops": sorted({str(p) for p in drops_used}),
        "negatives": [
            {
                "file": str(parsed.path),
                "format": parsed.format,
                "entries": len(parsed.entries),
                "false_positives": [
                    {
                        "entry": render(fp.entry, parsed.format).split("\t")[0],
                        "url": fp.url,
                        "service": fp.service,
                        "action": fp.action,
                    }
                    for fp in found
                ],
            }
            for parsed, found in wrong
        ],
        "notes": list(
            dict.fromkeys(
                [n for _, parsed in measured for n in parsed.notes]
                + [n for parsed, _ in wrong for n in parsed.notes]
            )
        ),
    }


def cmd_catalog_import(args: argparse.Namespace) -> int:
    from proxy.lists import importer
    from proxy.policy.catalog import CATEGORIES

    def fail(message: str) -> int:
        print(f"aiwarden catalog import: {message}", file=sys.stderr)
        return EXIT_INVALID

    if args.format not in IMPORT_FORMATS:
        return fail(f"unknown list format {args.format!r} (one of {', '.join(IMPORT_FORMATS)})")
    if args.category not in CATEGORIES:
        return fail(f"unknown category {args.category!r} (one of {', '.join(CATEGORIES)})")
    today = args.date or datetime.date.today().isoformat()
    try:
        today = datetime.date.fromisoformat(today).isoformat()
    except ValueError:
        return fail(f"--date {args.date!r} is not a date (YYYY-MM-DD)")
    policy = Path(args.policy)
    file = importer.policy_file(policy)
    if not file.is_file():
        return fail(f"{file}: no such policy file (give --policy DIR or FILE)")
    out = (args.out if args.out is not None else file.parent / "imported").resolve()
    if out.exists() and not out.is_dir():
        return fail(f"{out}: not a directory")
    foreign = importer.foreign_files(out)
    if foreign:
        return fail(
            f"{out} holds catalog files no import wrote ({foreign[0].name}...): give --out a "
            "directory of its own, such as imported/ beside the policy"
        )
    names: dict[str, Path] = {}
    try:
        lists = [read_list(path, args.format) for path in args.files]
        negatives = importer.Negatives()
        for path in args.negative:
            negatives.add(_read_one(path, "auto"))
    except ListError as e:
        return fail(str(e))
    for parsed in lists:
        target = importer.file_for(parsed.path.name)
        if target in names and names[target] != parsed.path:
            return fail(f"{names[target]} and {parsed.path} would both be written to {target}")
        names[target] = parsed.path
    try:
        curated = importer.curated_services(policy, out)
    except importer.ImportProblem as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return fail("the curated catalog does not load; nothing was imported")
    plan = importer.Plan(curated, negatives)
    results = []
    for parsed in lists:
        path = out / importer.file_for(parsed.path.name)
        others = [p for p in sorted(out.glob("*.yaml")) if p.name != path.name]
        try:
            other = importer.load_imported(others) if out.is_dir() else []
            result = importer.plan_list(
                parsed, plan, other, importer.read_old(path), today, args.category, out=path
            )
            text = importer.render_file(result, args.format, args.category)
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if text == current:
                result.status = "unchanged"
            elif args.dry_run:
                result.status = "would be written"
            else:
                importer.write_atomically(path, text, other, curated)
                result.status = "written"
        except importer.ImportProblem as e:
            for problem in e.problems:
                print(problem, file=sys.stderr)
            return fail(f"{parsed.path}: not imported ({path} is as it was)")
        except OSError as e:
            return fail(f"{path}: cannot write: {e.strerror or e}")
        results.append(result)
    included = out in importer.catalog_dirs(policy)
    check = None
    if included and not args.dry_run:
        try:
            loaded = load_policy(policy)
            check = {"ok": True, "services": len(loaded.services), "errors": []}
        except PolicyError as e:
            check = {"ok": False, "services": None, "errors": [str(p) for p in e.problems]}
    if args.json:
        json.dump(_import_record(results, out, included, check), sys.stdout, indent=2)
        print()
    else:
        _import_text(results, out, included, check, file.parent.resolve())
    if check and not check["ok"]:
        for problem in check["errors"]:
            print(problem, file=sys.stderr)
        return fail(f"the policy {file} does not load with the imported files")
    return EXIT_OK


def _import_text(results, out: Path, included: bool, check, policy_dir: Path) -> None:
    for r in results:
        fmt = r.parsed.format
        domains = sum(len(s.entries) for s in r.services)
        counts = [
            _count(len(r.services), "service"),
            _count(domains, "entry", "entries") + " imported",
            f"{len(r.catalogued)} already catalogued",
            _count(len(r.conflicts), "conflict"),
            _count(len(r.left_out), "line") + " left out",
        ]
        if r.duplicates:
            counts.append(_count(r.duplicates, "entry", "entries") + " its own label had already")
        print(f"{r.name} ({fmt}, {r.parsed.path}): {', '.join(counts)} -> {r.out} ({r.status})")
        for s in r.services:
            if s.status != "unchanged":
                print(f"  {s.status:<9} {s.id}  {', '.join(s.hosts)}")
        for sid in r.removed:
            print(f"  removed   {sid}")
        for skip in r.catalogued:
            print(f"  skipped   {render(skip.entry, fmt)}  ({skip.label}): {skip.reason}")
        for skip in r.conflicts:
            print(f"  conflict  {render(skip.entry, fmt)}  ({skip.label}): {skip.reason}")
        for left in r.left_out:
            print(f"  left out  {left}")
        for note in r.parsed.notes:
            if "include:" in note:
                print(f"  note      {note}")
    if not included:
        name = os.path.relpath(out, policy_dir)
        print(f"note: the policy does not include {out} yet: add it, as in "
              f"`catalog: [catalog, {name}]`")  # fmt: skip
    elif check and check["ok"]:
        print(f"policy OK with the imported files: {check['services']} services")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _import_record(results, out: Path, included: bool, check) -> dict[str, object]:
    def skip(x, fmt: str) -> dict[str, object]:
        return {
            "entry": render(x.entry, fmt),
            "label": x.label,
            "reason": x.reason,
            "service": x.service,
        }

    return {
        "lists": [
            {
                "list": r.name,
                "file": str(r.parsed.path),
                "format": r.parsed.format,
                "out": str(r.out),
                "status": r.status,
                "services": [
                    {
                        "id": s.id,
                        "label": s.label,
                        "hosts": s.hosts,
                        "entries": len(s.entries),
                        "checked": s.checked,
                        "status": s.status,
                    }
                    for s in r.services
                ],
                "removed": r.removed,
                "catalogued": [skip(x, r.parsed.format) for x in r.catalogued],
                "conflicts": [skip(x, r.parsed.format) for x in r.conflicts],
                "left_out": [
                    {"where": x.where, "text": x.text, "reason": x.reason} for x in r.left_out
                ],
                "duplicates": r.duplicates,
                "notes": r.parsed.notes,
            }
            for r in results
        ],
        "out": str(out),
        "included_by_policy": included,
        "policy_check": check,
    }


def cmd_explain(args: argparse.Namespace) -> int:
    policy = _load(args)
    if policy is None:
        return EXIT_INVALID
    engine = Engine(policy)
    body = None
    if args.body is not None:
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    status = EXIT_OK
    args.who = _who(policy, args)
    user, groups = args.who.user, args.who.groups
    for url in args.urls:
        try:
            scheme, host, path, _port = split_url(url)
        except BadHost as e:
            status = EXIT_INVALID
            if args.json:
                print(json.dumps({"url": url, "error": str(e)}))
            else:
                print(f"{url}\n  error:    {e}\n")
            continue
        request = engine.decide_request(args.method, host, path, args.client, user, groups)
        connect = None
        if scheme in ("https", "wss"):
            connect = engine.decide_connect(host, args.client, user, groups)
        request, body_note = _body_check(engine, request, connect, body, path)
        headers = _tenant_headers(engine, host, request)
        if args.json:
            record = _explain_record(url, args, request, connect)
            print(json.dumps(record | {"body": body_note, "tenant_headers": headers}))
        else:
            print(_explain_text(url, args, request, connect, body_note, headers))
    return status


def _tenant_headers(engine: Engine, host: str, request: Decision) -> dict[str, str]:
    """The tenant-restriction headers the proxy would set on this request (none on a block)."""
    if request.action == "block":
        return {}
    return {name: value for t in engine.tenants_of(host) for name, value in t.headers}


def _body_check(
    engine: Engine, request: Decision, connect: Decision | None, body: bytes | None, path: str
) -> tuple[Decision, str | None]:
    """What the unlisted-AI check makes of a request's body (the proxy's own functions), and
    a note saying so; no note when the body is not looked at."""
    if not engine.checks_body(request):
        return request, None
    if connect is not None and connect.connect == Mode.TUNNEL:
        return request, "not seen: the connection is tunnelled undecrypted"
    unlisted = engine.policy.unlisted_ai
    if body is None:
        return request, f"checked for an LLM API call (unlisted_ai: {unlisted.action})"
    style, unchecked = inspect_body(body, "", unlisted.max_body_bytes, path)
    decided = engine.decide_unlisted(request, style, unchecked) or request
    if style is not None:
        return decided, f"{describe(style)} (unlisted_ai: {unlisted.action})"
    if unchecked is not None:
        return (
            decided,
            f"cannot be checked: {unchecked} (unlisted_ai.unchecked: {unlisted.unchecked})",
        )
    return decided, "not an LLM API call"


def _who(policy: Policy, args: argparse.Namespace) -> Who:
    """Who the request is from: the --user given, else the policy's address map by --client
    (its file; pushed entries live in the running proxy's store). Without --groups, the
    user's directory groups are looked up when the policy names a directory."""
    groups = frozenset(g.strip().lower() for g in args.groups.split(",") if g.strip())
    if args.user:
        who = Who(args.user, groups, "given (--user)")
    elif (amap := policy.identity.address_map) and (user := amap.entries.get(args.client)):
        who = Who(user, groups, "address_map (the policy's file)")
    else:
        return Who(None, groups, None)
    settings = policy.identity.directory
    if groups or settings is None:
        return who
    from proxy.identity.directory import DirectoryUnavailable, LdapGroups  # ldap3: 0.15 s

    try:
        found = LdapGroups(settings)(who.user)
    except DirectoryUnavailable as e:  # as the proxy would decide with no answer at hand
        unknown = settings.on_error == "block"
        groups = GroupsUnknown(str(e)) if unknown else frozenset()
        return Who(who.user, groups, f"{who.source}; directory unreachable: {e}", "on_error")
    if found is None:
        return Who(who.user, frozenset(), f"{who.source}; not in the directory", "not_found")
    return Who(who.user, found, f"{who.source}; groups from the directory", "directory")


def _explain_record(
    url: str, args: argparse.Namespace, request: Decision, connect: Decision | None
) -> dict[str, object]:
    record: dict[str, object] = {
        "url": url,
        "method": args.method.upper(),
        "client": args.client,
        "user": args.who.user,
        "identity_source": args.who.source,
        "groups": sorted(args.who.groups),
    }
    record.update(request.to_dict())
    del record["stage"]
    record["connect"] = connect.connect if connect else None
    record["connect_reason"] = connect.reason if connect else None
    return record


def _explain_text(
    url: str,
    args: argparse.Namespace,
    request: Decision,
    connect: Decision | None,
    body: str | None = None,
    tenant_headers: dict[str, str] | None = None,
) -> str:
    service = "-"
    if request.service:
        where = f", {request.country}" if request.country else ""
        service = f"{request.service} ({request.category}, {request.vendor}{where})"
    lines = [
        f"{args.method.upper()} {url}",
        f"  action:   {request.action}",
        f"  service:  {service}",
        f"  activity: {request.activity or '-'}",
        f"  rule:     {request.rule}",
    ]
    if args.who.user or args.who.groups:
        groups = f", groups {', '.join(sorted(args.who.groups))}" if args.who.groups else ""
        lines.insert(1, f"  user:     {args.who.user or '-'} ({args.who.source or 'none'}{groups})")
    if connect:
        lines.append(f"  connect:  {connect.connect} ({connect.reason})")
    if body:
        lines.append(f"  body:     {body}")
    for name, value in (tenant_headers or {}).items():
        lines.append(f"  header:   {name}: {value} (tenants:, replacing the client's)")
    lines.append(f"  reason:   {request.reason}")
    if request.message:
        lines.append(f"  message:  {request.message}")
    if request.coaching:
        c = request.coaching
        alternative = f"; approved instead: {c.alternative}" if c.alternative else ""
        lines.append(
            f"  warn:     until the user proceeds (justification {c.justification}); then "
            f"allowed and monitored for {duration(c.ttl)}{alternative}"
        )
    return "\n".join(lines) + "\n"
