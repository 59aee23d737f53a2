"""Checks README.md and docs/*.md: every link resolves and every command runs.

    python3 tools/check_docs.py                # links, then every command
    python3 tools/check_docs.py --links-only   # links only (fast; also a test)
    python3 tools/check_docs.py --list         # what would run, and why not

Commands are the lines of ```sh fenced blocks (a trailing backslash joins
lines; comment lines are skipped). Each runs with bash from the checkout's
root, in order, as a reader would run them after the quick start. The check
leaves the checkout as it found it: README.md and docs/ are put back after
every command (the viz gallery rewrites them) and files that a command adds
(its output files, e.g. f1.png) are removed. A command fails the check
when it exits non-zero or prints alarming output (a pip ERROR, TensorFlow's
cuInit error, a tf.function retracing warning, a Python traceback).

A command is not run when it says why, as a trailing shell comment:
``# needs: GPU`` or ``# needs: internet``. An HTML comment on the line
before a block applies to every command in it:

* ``<!-- docs-check: append ARGS -->``: run with ARGS appended (tiny
  arguments, e.g. fewer steps; the docs say so where the block is).
* ``<!-- docs-check: needs WHAT -->``: not run, for a reason the docs give
  where the block is (e.g. a placeholder for the reader's own program).
* ``<!-- ci: NAME (SCRIPT runs ...) -->``: SCRIPT in .ci/ runs the block
  itself (e.g. the README's test command, which .ci/run runs from a fresh
  state); checked here only in that SCRIPT exists and names that marker.

Links: every relative link or image of these files must name an existing
file, and a #fragment a heading of the file it points to (GitHub's anchors).
Links to other sites are listed, not fetched.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS = ("GPU", "internet")
ALARMS = (
    re.compile(r"^ERROR: ", re.M),  # pip's red errors (e.g. a dependency conflict)
    re.compile(r"cuInit"),  # TensorFlow probing for a GPU driver that is not there
    re.compile(r"triggered tf\.function retracing"),
    re.compile(r"^Traceback \(most recent call last\)", re.M),
)
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
_DIRECTIVE = re.compile(r"^<!--\s*(docs-check|ci):\s*(.*?)\s*-->\s*$")
_NEEDS = re.compile(r"#\s*needs:\s*(\w+)\s*$")
_COMMENT = re.compile(r"\s+#\s.*$")  # a trailing shell comment
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_SHELLS = ("sh", "bash", "shell", "console")


# A command that installs into (or recreates) the environment.
_INSTALL = re.compile(r"(^|[\s/])pip3? install\b|-m pip install\b|-m venv\b")


@dataclasses.dataclass
class Command:
    doc: Path
    line: int
    text: str  # as written, without the trailing `# needs:` comment
    needs: str | None = None  # "GPU" or "internet": not run
    append: str = ""  # tiny arguments the docs give for the check
    ci: str | None = None  # the .ci/ script that runs this block instead

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def installs(self) -> bool:
        """Whether it writes into the environment (a pip install, a new venv)."""
        return bool(_INSTALL.search(self.text))

    @property
    def to_run(self) -> str:
        """The command without its trailing comment, with the appended arguments."""
        return f"{_COMMENT.sub('', self.text)} {self.append}".strip()


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _blocks(text: str):
    """(info string, directive line or None, [(line number, line)]) per fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2)
        directive = lines[i - 1].strip() if i > 0 and _DIRECTIVE.match(lines[i - 1].strip()) else None
        body, i = [], i + 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        yield info, directive, body
        i += 1


def commands(doc: Path) -> list[Command]:
    """The shell commands of one Markdown file, with their markers."""
    found = []
    for info, directive, body in _blocks(doc.read_text()):
        if info not in _SHELLS:
            continue
        append = ci = block_needs = None
        if directive:
            kind, arg = _DIRECTIVE.match(directive).groups()
            if kind == "ci":
                ci = arg
            elif arg.startswith("append "):
                append = arg[len("append "):].strip()
            elif arg.startswith("needs "):
                block_needs = arg[len("needs "):].strip()
            else:
                raise ValueError(f"{doc}: unknown docs-check directive {directive!r}")
        pending, start = "", 0
        for number, line in body:
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if not pending:
                start = number
            if stripped.endswith("\\"):
                pending += stripped[:-1].rstrip() + " "
                continue
            text, needs = pending + stripped, block_needs
            pending = ""
            m = _NEEDS.search(text)
            if m:
                needs = m.group(1)
                if needs not in NEEDS:
                    raise ValueError(f"{doc}:{start}: '# needs: {needs}' is not one of {NEEDS}")
                text = text[: m.start()].rstrip()
            found.append(Command(doc, start, text, needs, append or "", ci))
    return found


# --- links ------------------------------------------------------------------------


def anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    seen: dict[str, int] = {}
    result = set()
    in_fence = False
    for line in doc.read_text().split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip()
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result


def check_links(docs: list[Path]) -> tuple[list[str], list[str]]:
    """(problems, external links) of the given files."""
    problems, external = [], []
    for doc in docs:
        text = doc.read_text()
        for m in _LINK.finditer(text):
            target = m.group(1)
            where = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
            if re.match(r"^[a-z]+:", target):
                external.append(f"{where}: {target}")
                continue
            path, _, fragment = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                problems.append(f"{where}: {target}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                problems.append(f"{where}: {target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    return problems, external


# --- commands -----------------------------------------------------------------------


def check_ci_marker(command: Command) -> str | None:
    """None if the .ci/ script the marker names exists and reads the marker."""
    m = re.search(r"\((\.ci/[\w.-]+) runs", command.ci)
    if not m:
        return f"{command.where}: the ci marker names no .ci/ script: {command.ci!r}"
    script = ROOT / m.group(1)
    name = command.ci.split("(")[0].strip()
    if not script.exists():
        return f"{command.where}: {m.group(1)} does not exist"
    if name not in script.read_text():
        return f"{command.where}: {m.group(1)} does not look for the marker '{name}'"
    return None


def untracked(root: Path) -> set[str]:
    """Files git does not track and does not ignore."""
    out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    return {name for name in out.split("\0") if name}


class Restorer:
    """Puts README.md and docs/ back and removes new files after each command."""

    def __init__(self, root: Path):
        self.root = root
        self.saved = {p: p.read_bytes() for p in doc_files(root) + sorted((root / "docs").rglob("*"))
                      if p.is_file()}
        self.before = untracked(root)

    def restore(self) -> list[str]:
        changed = []
        for path, data in self.saved.items():
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
                changed.append(str(path.relative_to(self.root)))
        for name in sorted(untracked(self.root) - self.before):
            path = self.root / name
            if path.is_file() or path.is_symlink():
                path.unlink()
                changed.append(name)
        return changed


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def alarms(output: str) -> list[str]:
    return [line for line in output.split("\n") if any(a.search(line) for a in ALARMS)]


def run(command: Command, cwd: Path, timeout: float) -> str | None:
    """None if the command ran cleanly, else what went wrong."""
    start, cpu = time.monotonic(), _children_cpu()
    try:
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {command.to_run}"], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish in {timeout:.0f} s"
    output = done.stdout + done.stderr
    print(f"    {time.monotonic() - start:.0f} s wall, {_children_cpu() - cpu:.0f} s CPU, "
          f"exit {done.returncode}", flush=True)
    if done.returncode != 0:
        return f"exit {done.returncode}:\n{output[-3000:]}"
    bad = alarms(output)
    if bad:
        return "alarming output:\n" + "\n".join(bad[:10])
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links-only", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the commands; run nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--only", action="append", metavar="FILE", default=[],
                       help="run only the commands of FILE (repeatable; e.g. README.md)")
    which.add_argument("--skip", action="append", metavar="FILE", default=[],
                       help="run every command but those of FILE (repeatable). CI runs "
                            "README.md's commands (which reinstall into .venv) first, then "
                            "the rest beside its other builds")
    parser.add_argument("--installs", choices=("only", "skip"),
                        help="run only the chosen docs' commands that install into the "
                             "environment (pip install, python -m venv), or all but those. CI "
                             "runs the installs before the suite and the rest beside it")
    args = parser.parse_args(argv)
    for name in args.only + args.skip:
        if not (ROOT / name).is_file() or (ROOT / name) not in doc_files():
            parser.error(f"{name} is not one of the checked docs "
                         f"({', '.join(str(d.relative_to(ROOT)) for d in doc_files())})")

    docs = doc_files()
    problems, external = check_links(docs)
    for line in external:
        print(f"link not fetched (needs internet): {line}")
    print(f"links: {len(problems)} broken", flush=True)
    if args.links_only:
        for p in problems:
            print("  " + p)
        return 1 if problems else 0

    chosen = [ROOT / name for name in args.only] or [
        doc for doc in docs if doc not in {ROOT / name for name in args.skip}]
    cmds = [c for doc in chosen for c in commands(doc)]
    restorer = None if args.list else Restorer(ROOT)
    for c in cmds:
        if c.ci:
            why = check_ci_marker(c)
            print(f"{c.where}: run by CI ({c.ci}): {c.text}")
            if why:
                problems.append(why)
        elif c.needs:
            print(f"{c.where}: not run (needs {c.needs}): {c.text}")
        elif args.installs and c.installs != (args.installs == "only"):
            print(f"{c.where}: not run here (--installs {args.installs}): {c.text}")
        else:
            print(f"{c.where}: $ {c.to_run}", flush=True)
            if args.list:
                continue
            why = run(c, ROOT, args.timeout)
            cleaned = restorer.restore()
            if cleaned:
                print(f"    put back / removed: {', '.join(cleaned)}")
            if why:
                problems.append(f"{c.where}: {c.to_run}: {why}")
    for p in problems:
        print("FAILED " + p)
    print(f"check_docs: {len(cmds)} commands, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
