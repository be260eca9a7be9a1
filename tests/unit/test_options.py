"""The table of options (proxy/options.py) and what is derived from it: the addons' options,
the flags of `aiwarden run`, the settings it makes, the workers' command line, the README."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from mitmproxy import optmanager

from proxy import options, pac
from proxy.cli import build_parser, main
from proxy.mitm.pipeline import build
from proxy.options import BY_FLAG, OPTIONS, RUN_FLAGS, Option, settings_from, worker_argv
from proxy.serve.fastpath import FastPath
from proxy.serve.workers import worker_command

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = ROOT / "README.md"

# the flags a worker does not get from the supervisor as they are, and why
NOT_FOR_WORKERS = {
    "--listen": "the supervisor's reserved port",
    "--admin": "none: the supervisor serves the admin listener",
    "--workers": "1",
    "--pac-proxy": "the PAC file is the supervisor's",
    "--pac-mode": "the PAC file is the supervisor's",
    "--pac-bypass": "the PAC file is the supervisor's",
    "--pac-spread": "the PAC file is the supervisor's",
    "--worker": "its own number",
    "--worker-link": "its own socket",
    "--protect": "the supervisor's admin address",
    "--upstream-proxy": "in the environment (AIWARDEN_PARENT): credentials stay off `ps`",
}


class DeclarationRecorder:
    """A loader that notes which addon declares which option."""

    def __init__(self) -> None:
        self.by: dict[str, list[str]] = {}

    def add_option(self, name, typespec, default, help, choices=None) -> None:
        self.by.setdefault(name, []).append(self.addon)


def declared_by(*addons) -> dict[str, list[str]]:
    recorder = DeclarationRecorder()
    for addon in addons:
        recorder.addon = type(addon).__name__
        if hasattr(addon, "load"):
            addon.load(recorder)
    return recorder.by


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


@pytest.fixture(autouse=True)
def no_policy_from_the_environment(monkeypatch):
    monkeypatch.delenv("AIWARDEN_POLICY", raising=False)


# -- the table ---------------------------------------------------------------------------------


def test_each_option_and_flag_is_in_the_table_once():
    for key in ("option", "flag"):
        values = [getattr(o, key) for o in OPTIONS if getattr(o, key) is not None]
        assert len(values) == len(set(values)), key
    assert all(o.option or o.flag for o in OPTIONS)


def test_every_aiwarden_option_is_declared_by_exactly_one_addon():
    pipeline = build(admin=True)
    fast_path = FastPath(pipeline.gate, pipeline.recorder, pipeline.discovery)
    by = declared_by(*pipeline.addons, fast_path)
    assert {name: len(addons) for name, addons in by.items()} == {
        o.option: 1 for o in OPTIONS if o.declared
    }
    assert by["aiwarden_fast_tunnels"] == ["FastPath"]


def test_mitmdump_gets_every_option_but_those_of_aiwarden_run_alone():
    from proxy.mitm import script

    assert set(declared_by(*script.addons)) == {
        o.option for o in OPTIONS if o.declared and not o.run_only
    }


def test_mitmproxy_takes_each_declaration():
    """Types and defaults as mitmproxy checks them, and the table's help text."""
    opts = optmanager.OptManager()
    for o in OPTIONS:
        if o.declared:
            options.declare(opts, o.option)
    for o in OPTIONS:
        if o.declared:
            assert opts._options[o.option].help == o.help
            assert opts._options[o.option].default == o.default


def test_declare_refuses_what_is_not_aiwarden_s():
    with pytest.raises(ValueError, match="mitmproxy's own"):
        options.declare(optmanager.OptManager(), "proxyauth")
    with pytest.raises(KeyError):
        options.declare(optmanager.OptManager(), "aiwarden_nothing")


def test_a_flag_s_default_is_its_option_s():
    for o in OPTIONS:
        if o.declared and o.flag and o.flag_default is not None:
            assert o.flag_default == o.default, o.flag
    assert BY_FLAG["--pac-mode"].choices == pac.MODES


# -- `aiwarden run` --------------------------------------------------------------------------


def run_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_every_run_flag_is_in_the_table_and_every_flag_of_the_table_is_a_run_flag():
    spellings = {
        s for a in run_parser()._actions for s in a.option_strings if s not in ("-h", "--help")
    }
    assert spellings == set(BY_FLAG)


def test_run_flags_defaults(monkeypatch):
    args = run_args()
    expected = {o.attribute: o.flag_default for o in RUN_FLAGS}
    assert {k: v for k, v in vars(args).items() if k != "command"} == expected
    monkeypatch.setenv("AIWARDEN_POLICY", "/etc/aiwarden")
    assert run_args().policy == "/etc/aiwarden"
    assert build_parser().parse_args(["check"]).policy == "/etc/aiwarden"


def test_settings_by_default():
    known = {o.option for o in OPTIONS if o.option}
    assert settings_from(run_args(), known) == {
        "aiwarden_policy": "policies",
        "aiwarden_admin": "127.0.0.1:3129",
        "aiwarden_upstream_timeout": 300,
        "aiwarden_client_header_timeout": 30,
        "aiwarden_require_proxy_tls": False,
        "aiwarden_kerberos_keep_realm": False,
        "aiwarden_policy_watch": 2,
        "aiwarden_fast_tunnels": True,
        "aiwarden_pac_mode": "all",
        "aiwarden_pac_spread": False,
    }


def test_settings_from_flags_and_only_for_options_the_process_has():
    args = run_args(
        "--policy", "p", "--admin", "", "--upstream-ca", "ca.pem", "--proxyauth", "u:p",
        "--audit-log", "-", "--upstream-timeout", "5", "--no-fast-tunnels",
        "--pac-proxy", "a:1", "--pac-proxy", "b:2", "--pac-bypass", "corp.example",
    )  # fmt: skip
    settings = settings_from(args, {o.option for o in OPTIONS if o.option})
    assert settings["aiwarden_admin"] == ""  # empty: no admin listener, not the default
    assert settings["ssl_verify_upstream_trusted_ca"] == "ca.pem"
    assert settings["proxyauth"] == "u:p"
    assert settings["aiwarden_audit_log"] == "-"
    assert settings["aiwarden_upstream_timeout"] == 5
    assert settings["aiwarden_fast_tunnels"] is False
    assert settings["aiwarden_pac_proxy"] == ["a:1", "b:2"]
    assert settings["aiwarden_pac_bypass"] == ["corp.example"]
    assert "confdir" not in settings  # given to mitmproxy's Options by run.py
    # a worker: no admin listener, so neither its options nor the PAC's
    worker = settings_from(args, {"aiwarden_policy", "proxyauth", "aiwarden_fast_tunnels"})
    assert worker == {"aiwarden_policy": "p", "proxyauth": "u:p", "aiwarden_fast_tunnels": False}
    empty = run_args("--audit-log", "", "--proxyauth", "", "--upstream-ca", "")
    assert not {"aiwarden_audit_log", "proxyauth", "ssl_verify_upstream_trusted_ca"} & set(
        settings_from(empty, {o.option for o in OPTIONS if o.option})
    )


def test_settings_are_what_mitmproxy_accepts():
    opts = optmanager.OptManager()
    for o in OPTIONS:
        if o.declared:
            options.declare(opts, o.option)
    opts.update(**settings_from(every_flag_set(), opts))


# -- the workers -----------------------------------------------------------------------------


def every_flag_set() -> argparse.Namespace:
    """`aiwarden run` with every visible flag given a value that is not its default."""
    argv: list[str] = []
    for o in RUN_FLAGS:
        if o.hidden:
            continue
        if o.action in ("store_true", "store_false"):
            argv.append(o.flag)
        elif o.action == "append":
            argv += [o.flag, "x.example:1", o.flag, "y.example:2"]
        elif o.choices:
            argv += [o.flag, next(c for c in o.choices if c != o.flag_default)]
        else:
            argv += [o.flag, "7" if o.type is int else f"value-of{o.flag}"]
    args = run_args(*argv)
    for o in RUN_FLAGS:
        if not o.hidden:
            assert getattr(args, o.attribute) != o.flag_default, o.flag
    return args


def test_the_flags_that_do_not_go_to_workers_are_the_known_ones():
    assert {o.flag for o in RUN_FLAGS if not o.to_workers} == set(NOT_FOR_WORKERS)


@pytest.mark.parametrize("make", [run_args, every_flag_set], ids=["defaults", "every flag"])
def test_a_worker_gets_the_supervisor_s_settings(make):
    args = make()
    argv = worker_command(args, 3, ("127.0.0.1", 4567), ("127.0.0.1", 3129), 9)
    assert argv[1:4] == ["-m", "proxy", "run"]
    worker = build_parser().parse_args(argv[3:])
    for o in RUN_FLAGS:
        if o.to_workers:
            assert getattr(worker, o.attribute) == getattr(args, o.attribute), o.flag
    assert (worker.listen, worker.admin, worker.workers) == ("127.0.0.1:4567", "", 1)
    assert (worker.worker, worker.worker_link, worker.protect) == (3, 9, "127.0.0.1:3129")
    # what a worker's addons declare (no admin listener), it sets as the supervisor would
    known = {o.option for o in OPTIONS if o.option} - {
        o.option for o in OPTIONS if o.flag in NOT_FOR_WORKERS
    }
    assert settings_from(worker, known) == settings_from(args, known)


def test_worker_argv_leaves_out_what_is_the_default():
    assert worker_argv(run_args()) == [
        "--policy", "policies", "--confdir", "certs", "--log-level", "info",
        "--upstream-timeout", "300", "--client-header-timeout", "30", "--policy-watch", "2",
    ]  # fmt: skip
    assert worker_command(run_args(), 0, ("::1", 1), None, 5)[-2:] == ["--worker-link", "5"]


def test_an_option_writes_itself_as_a_flag():
    flag = Option(flag="--x", action="append")
    assert flag.argv(None) == [] and flag.argv(["a", "b"]) == ["--x", "a", "--x", "b"]
    assert Option(flag="--y", action="store_false").argv(False) == ["--y"]
    assert Option(flag="--z").argv(0) == ["--z", "0"]


# -- the docs --------------------------------------------------------------------------------


def test_the_readme_table_is_the_generated_one():
    section = options.readme_section(README.read_text())
    assert section is not None, "README.md lost its options markers"
    assert section == options.markdown(), (
        "README.md's table of options is out of date: run `aiwarden options --readme README.md`"
    )


def test_every_visible_flag_is_documented():
    for o in RUN_FLAGS:
        assert o.doc, o.flag
        if not o.hidden:
            assert f"`{o.flag}`" in options.markdown()
            assert o.flag in options.synopsis()
        else:
            assert f"`{o.flag}`" not in options.markdown()


def test_aiwarden_options_prints_the_table_and_writes_a_readme(capsys, tmp_path):
    assert main(["options"]) == 0
    assert capsys.readouterr().out == options.markdown()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{options.BEGIN}\nold\n{options.END}\n\nafter\n")
    assert main(["options", "--readme", str(readme)]) == 0
    assert readme.read_text() == (
        f"# x\n\n{options.BEGIN}\n{options.markdown()}{options.END}\n\nafter\n"
    )
    assert main(["options", "--readme", str(readme)]) == 0
    assert "up to date" in capsys.readouterr().out
    readme.write_text("no markers\n")
    assert main(["options", "--readme", str(readme)]) == 2
    assert "markers" in capsys.readouterr().err


def test_the_parent_proxy_reaches_the_workers_through_their_environment_only():
    """Its URL may hold credentials: not on a worker's command line, which `ps` shows."""
    from proxy.serve.workers import worker_environment

    args = run_args("--upstream-proxy", "http://u:secret@127.0.0.1:3128")
    assert not [a for a in worker_command(args, 0, ("127.0.0.1", 1), None, 3) if "secret" in a]
    env = worker_environment(args, "/tmp/metrics")
    assert env["AIWARDEN_PARENT"] == "http://u:secret@127.0.0.1:3128"
    assert "AIWARDEN_PARENT" not in worker_environment(run_args(), "/tmp/metrics")
