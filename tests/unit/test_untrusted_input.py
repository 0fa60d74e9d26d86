"""Pure checks of untrusted input: file limits, data limits, the provider policy, flag numbers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import click
import pytest

from gameday.config import policy
from gameday.config._files import MAX_BYTES, MAX_DEPTH, load_file, parse_data
from gameday.config.policy import AllowModel, ProviderPolicy, check_providers
from gameday.errors import InputError


def test_our_providers_are_what_the_policy_lists() -> None:
    import gameday.chaos.actions as actions
    import gameday.chaos.probes as probes

    assert set(actions.__all__) == policy.OUR_ACTIONS
    assert set(probes.__all__) == policy.OUR_PROBES


@pytest.mark.parametrize(("text", "as_json", "found"), [
    ("a: .nan\n", False, "nan"),
    ("a: [1, -.inf]\n", False, "inf"),
    ('{"a": NaN}', True, "NaN"),
    ('{"a": [Infinity]}', True, "Infinity"),
])
def test_non_finite_numbers_are_refused_wherever_they_stand(text: str, as_json: bool,
                                                           found: str) -> None:
    with pytest.raises(InputError) as info:
        parse_data(text, "f.yaml", as_json)
    assert "finite" in info.value.expected
    assert found.lower() in str(info.value.found).lower()


def test_depth_and_aliases_are_bounded_before_they_cost_anything() -> None:
    deep = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(InputError, match="nesting"):
        parse_data(deep, "f.yaml", False)
    parse_data("a: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2), "f.yaml", False)
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
        for p, n in zip("abcde", "bcdef", strict=True))
    with pytest.raises(InputError, match="values"):
        parse_data(laughs, "f.yaml", False)
    with pytest.raises(InputError, match="nesting"):
        parse_data("[" * 100_000 + "]" * 100_000, "f.json", True)


def test_only_regular_files_of_at_most_a_mebibyte_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_BYTES + 1))
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\n")
    for path, found in ((fifo, "FIFO"), (tmp_path, "directory"), (big, "bytes"),
                        (loop, "symbolic link loop"), (tmp_path / "none", "no file")):
        with pytest.raises(InputError) as info:
            load_file(path, "X", "a file", "fix it")
        assert found in str(info.value.found), (path, info.value.found)
    with pytest.raises(InputError) as info:
        load_file(bad, "X", "a file", "fix it")
    assert info.value.where == f"{bad}:1" and info.value.expected == "UTF-8 text"


def _doc(provider: dict[str, object], activity_type: str = "probe",
         section: str = "method") -> dict[str, object]:
    return {"title": "t", section: [{"type": activity_type, "name": "a", "provider": provider}]}


def test_default_policy_allows_our_providers_only() -> None:
    check_providers(_doc({"type": "python", "module": "gameday.chaos.probes",
                          "func": "cell_serves"}), policy.DEFAULT_POLICY, "f")
    check_providers(_doc({"type": "python", "module": "gameday.chaos.actions",
                          "func": "kill_pods"}, "action"), policy.DEFAULT_POLICY, "f")
    for provider in ({"type": "python", "module": "os", "func": "system"},
                     {"type": "python", "module": "gameday.chaos.actions", "func": "inject"},
                     {"type": "python", "module": "gameday.engine.faults", "func": "inject"},
                     {"type": "process", "path": "/bin/true"},
                     {"type": "http", "url": "http://127.0.0.1/"},
                     {"type": "shell"}):
        with pytest.raises(InputError):
            check_providers(_doc(provider), policy.DEFAULT_POLICY, "f")


def test_opt_ins_are_narrow_and_only_for_probes() -> None:
    allowed = ProviderPolicy.from_model(AllowModel(
        python_modules=["acme.probes"], process=["/usr/bin/check"],
        http=["https://status.example.com/"], controls=["acme.controls"]))
    check_providers(_doc({"type": "python", "module": "acme.probes", "func": "ok"}), allowed, "f")
    check_providers(_doc({"type": "process", "path": "/usr/bin/check"}), allowed, "f")
    check_providers(_doc({"type": "http", "url": "https://status.example.com/health"}),
                    allowed, "f")
    check_providers({"title": "t", "method": [], "controls": [
        {"name": "c", "provider": {"type": "python", "module": "acme.controls"}}]}, allowed, "f")
    refused = [
        _doc({"type": "python", "module": "acme.probes", "func": "ok"}, "action"),
        _doc({"type": "process", "path": "/usr/bin/check"}, "action"),
        _doc({"type": "process", "path": "/usr/bin/check2"}),
        _doc({"type": "http", "url": "https://status.example.com.evil/"}),
        _doc({"type": "http", "url": "https://status.example.com/"}, "action", "rollbacks"),
    ]
    for doc in refused:
        with pytest.raises(InputError):
            check_providers(doc, allowed, "f")
    for wide in ({"python_modules": ["os"]}, {"python_modules": ["acme.actions"]},
                 {"python_modules": ["gameday.engine"]}, {"process": True}, {"http": True},
                 {"process": ["relative"]}, {"http": ["ftp://x/"]}):
        with pytest.raises(ValueError):
            AllowModel.model_validate(wide)
    assert policy.DEFAULT_POLICY.union(allowed) == allowed
    assert ProviderPolicy.from_json(allowed.to_json()) == allowed


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e309", "0", "51", "x"])
def test_flag_numbers_are_finite_and_in_range(value: str) -> None:
    from gameday.cli.params import finite

    kind = finite(0, 50, low_open=True)
    with pytest.raises(click.BadParameter) as info:
        kind.convert(value, None, None)
    assert "fix:" in info.value.message
    assert math.isclose(kind.convert("50", None, None), 50.0)
