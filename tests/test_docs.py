"""The docs' machinery: links resolve, commands are found with their markers,
and the build requirements the quick start installs match pyproject.toml.

Running the documented commands themselves is a CI step
(``python3 tools/check_docs.py``); it takes minutes.
"""

import importlib.util
import pathlib
import re
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load_check_docs():
    spec = importlib.util.spec_from_file_location("check_docs", ROOT / "tools" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_docs"] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


check_docs = _load_check_docs()


def test_every_link_in_the_readme_and_docs_resolves():
    problems, _ = check_docs.check_links(check_docs.doc_files())
    assert problems == []


def test_broken_links_and_anchors_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(check_docs, "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Top\n\n## Quick start\n\n[ok](docs/a.md#a-b) [here](#quick-start) [gone](docs/b.md)\n"
        "[bad anchor](docs/a.md#nope) ![img](docs/x.png) [web](https://example.com)\n")
    (tmp_path / "docs" / "a.md").write_text("# A b\n\n```sh\n# not a heading\n```\n")
    problems, external = check_docs.check_links(check_docs.doc_files(tmp_path))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "docs/b.md: no such file", "docs/a.md#nope: no heading #nope in docs/a.md",
        "docs/x.png: no such file"]
    assert external == ["README.md:6: https://example.com"]


def test_commands_markers_and_tiny_arguments(tmp_path, monkeypatch):
    monkeypatch.setattr(check_docs, "ROOT", tmp_path)
    doc = tmp_path / "page.md"
    doc.write_text(
        "```python\nimport x\n```\n\n"
        "```sh\n# a comment\n.venv/bin/python -m a   # note\nsh gpu.sh   # needs: GPU\n"
        "pip install x \\\n  y   # needs: internet\n```\n\n"
        "<!-- docs-check: append --steps 3 -->\n```sh\n.venv/bin/python -m race  # slow\n```\n\n"
        "<!-- ci: test command (.ci/run runs the line below) -->\n```sh\npytest\n```\n\n"
        "<!-- docs-check: needs your program -->\n```sh\npython -m tool train.py\n```\n")
    found = check_docs.commands(doc)
    assert [(c.line, c.to_run, c.needs, c.ci) for c in found] == [
        (7, ".venv/bin/python -m a", None, None),
        (8, "sh gpu.sh", "GPU", None),
        (9, "pip install x y", "internet", None),
        (15, ".venv/bin/python -m race --steps 3", None, None),
        (20, "pytest", None, "test command (.ci/run runs the line below)"),
        (25, "python -m tool train.py", "your program", None),
    ]
    doc.write_text("```sh\nrun   # needs: coffee\n```\n")
    with pytest.raises(ValueError, match="coffee"):
        check_docs.commands(doc)


def test_every_ci_marker_names_a_script_that_reads_it():
    for doc in check_docs.doc_files():
        for command in check_docs.commands(doc):
            if command.ci:
                assert check_docs.check_ci_marker(command) is None


def test_alarming_output_is_recognized():
    assert check_docs.alarms("ok\nERROR: pip's dependency resolver does not ...\n")
    assert check_docs.alarms("E0000 cuda_platform.cc:52] failed call to cuInit: INTERNAL")
    assert check_docs.alarms("WARNING: 5 out of the last 5 calls to <function f> triggered "
                             "tf.function retracing.")
    assert check_docs.alarms("Traceback (most recent call last):\n  File ...")
    assert not check_docs.alarms("Epoch 1/5\ntest accuracy: 0.9900\nno errors here\n")


def _names(requirements):
    return {re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower().replace("_", "-"): r.replace(" ", "")
            for r in requirements}


def test_build_requirements_include_pyprojects_build_system_requires():
    # The quick start builds without isolation, so what pyproject.toml's
    # [build-system] asks for must be in build-requirements.txt, same pins.
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    lines = [line.split("#")[0].strip() for line in (ROOT / "build-requirements.txt").read_text().splitlines()]
    listed = _names([line for line in lines if line])
    for name, pinned in _names(requires).items():
        assert listed.get(name) == pinned, f"build-requirements.txt: {name} should be {pinned}"
