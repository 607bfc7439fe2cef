"""The README quick starts run exactly as written.

Every command of the fenced ``bash``/``sh``/``shell`` blocks of ``README.md`` and
``recipes/*/README.md`` is either

* **run**, in order, with ``bash -c`` from the repository root of a temporary copy of the
  repository (the files git sees: tracked ones plus new, not ignored ones — no ``runs/``,
  caches or build outputs), one copy per README, with the command's own relative paths. Only
  where the command as written would take minutes are ``key=value`` overrides (or a benchmark's
  size flags) appended (:data:`SCALE_DOWN`); everything before them is the README's text; or
* **skipped by a listed rule** (:data:`SKIP_RULES`): it installs packages, runs the test suite,
  needs downloaded data or weights, or needs the output of a skipped command. No command is
  dropped silently: :func:`test_every_readme_command_is_run_or_skipped_by_a_rule` checks the
  plan and prints it.

The commands run with empty weight caches, downloads forbidden (``MODALINK_OFFLINE=1``), no GPU
(``CUDA_VISIBLE_DEVICES=``), one thread, and the copy's ``modalink`` first on ``PYTHONPATH`` (an
editable install would otherwise import the working tree's). A command that fails fails the
test with its README line and the tail of its output.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_GLOBS = ("README.md", "recipes/*/README.md")
SHELL_LANGS = {"bash", "sh", "shell"}
COMMAND_TIMEOUT_S = 600

# ----------------------------------------------------------------------------- rules
#: (reason, pattern searched in the command text): a command matching one is not run.
SKIP_RULES: tuple[tuple[str, str], ...] = (
    ("installs packages (environment setup; needs the network)", r"^pip\s+install\b"),
    ("runs the test suite, of which this test is a part", r"^python\s+-m\s+pytest\b"),
    ("needs downloaded data or weights (a path under /data, /models or ~)",
     r"(?:^|[\s=\"'])(?:/data/|/models/|~/)"),
    ("needs a downloaded file that is not in the repository (GloVe vectors, official FOP checkpoints)",
     r"glove\.6B|v3_models/"),
)
NEEDS_SKIPPED_OUTPUT = "needs the output of a skipped command"
SAME_AS_RECIPE = "the same command is run for the recipe's own README"

#: Appended to a command that runs this script, because as written it takes minutes on 2 cores.
#: Tiny synthetic data and one epoch; the commands' own arguments stay as written before them.
SCALE_DOWN: dict[str, list[str]] = {
    # ~2 min as written: 1,300 images, 30 epochs
    "recipes/srmm/train.py": [
        "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=10", "data.synthetic.n_test_per_class=3",
        "data.synthetic.image_size=32", "engine.epochs=1", "engine.batch_size=16", "prepare.progress=false",
        "engine.progress=false"],
    # 1-10 min as written: ResNet-18 on 1,300 images, 8 epochs
    "recipes/chameleon/train.py": [
        "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=8", "data.synthetic.n_test_per_class=3",
        "data.synthetic.image_size=32", "data.image_size=32", "engine.epochs=1", "engine.batch_size=16"],
    # ~3 min as written: 1,000 users x 2,000 items, 10 epochs
    "recipes/recsys/train.py": [
        "data.synthetic.n_users=100", "data.synthetic.n_items=200", "engine.epochs=1"],
    # ~1 min as written (20 epochs per language); the synthetic set itself has a fixed size
    "recipes/fame/train.py": ["engine.epochs=1"],
    # ~10 min as written: 3 members of the default FAME run
    "recipes/fame/ensemble.py": ["engine.epochs=1"],
    # ~1-10 min as written: 10^6 trials
    "scripts/bench_score_norm.py": ["--trials", "20000", "--repeats", "1"],
    # a serving benchmark: 100,000 items x 10,000 users as written
    "scripts/bench_recsys.py": ["--items", "2000", "--users", "200"],
    # ~5 min as written: 3 seeds x 2 trainings on 120 items of real media
    "scripts/recsys_single_modality.py": ["--seeds", "0", "--items-per-photo", "8", "--users", "40", "--epochs", "1",
                                          "--audio", "tone", "--input-norms", "center", "--set",
                                          "engine.batch_size=32"],
}

#: Commands of README.md that recipes/<task>/README.md runs as well are run there only.
_RECIPE_OF = re.compile(r"\brecipes/(\w+)/")
_OUTPUT_FLAGS = ("--output-dir", "--output", "--out", "-o", "--run-dir")


@dataclass(frozen=True)
class Command:
    readme: str  # path relative to the repository root
    line: int  # first line of the command in the README
    text: str  # as written: continuation lines joined, a trailing comment removed

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"

    def tokens(self) -> list[str]:
        return shlex.split(self.text)

    def script(self) -> str | None:
        """The repository script the command runs (``python X.py`` / ``accelerate launch ... X.py``)."""
        for tok in self.tokens():
            if tok.endswith(".py"):
                return tok
        return None


@dataclass
class Plan:
    run: list[tuple[Command, list[str]]] = field(default_factory=list)  # (command, appended arguments)
    skipped: list[tuple[Command, str]] = field(default_factory=list)  # (command, rule)


# ----------------------------------------------------------------------------- parsing
def strip_comment(line: str) -> str:
    """``line`` without a shell comment (a ``#`` at a word start, outside quotes)."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


def parse_commands(text: str, readme: str) -> list[Command]:
    """The commands of the fenced shell blocks of one README's ``text``."""
    out: list[Command] = []
    in_block = False
    parts: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```\s*(\S*)", raw)
        if fence:
            in_block = not in_block and fence.group(1).lower() in SHELL_LANGS
            parts = []
            continue
        if not in_block:
            continue
        line = strip_comment(raw)
        if not parts:
            if not line.strip():
                continue
            start = n
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line.strip())
        out.append(Command(readme, start, " ".join(p for p in parts if p)))
        parts = []
    return out


def readme_paths(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    for pattern in README_GLOBS:
        found += sorted(p.relative_to(root).as_posix() for p in root.glob(pattern))
    return found


def readme_commands(root: Path = ROOT) -> list[Command]:
    cmds: list[Command] = []
    for rel in readme_paths(root):
        cmds += parse_commands((root / rel).read_text(encoding="utf-8"), rel)
    return cmds


def _outputs(cmd: Command) -> list[str]:
    toks = cmd.tokens()
    return [toks[i + 1] for i, t in enumerate(toks[:-1]) if t in _OUTPUT_FLAGS]


def _uses(cmd: Command, path: str) -> bool:
    p = path.rstrip("/")
    return any(t == p or t.startswith(p + "/") or t.endswith("=" + p) for t in cmd.tokens())


def plan_readme(cmds: list[Command], all_cmds: list[Command]) -> Plan:
    """What to run and what to skip (with the rule) for the commands of one README, in order."""
    plan = Plan()
    skipped_outputs: list[str] = []
    for cmd in cmds:
        reason = next((why for why, pat in SKIP_RULES if re.search(pat, cmd.text)), None)
        if reason is None and any(_uses(cmd, o) for o in skipped_outputs):
            reason = NEEDS_SKIPPED_OUTPUT
        if reason is None and cmd.readme == "README.md":
            m = _RECIPE_OF.search(cmd.text)
            if m and any(c.text == cmd.text and c.readme == f"recipes/{m.group(1)}/README.md" for c in all_cmds):
                reason = SAME_AS_RECIPE
        if reason is not None:
            plan.skipped.append((cmd, reason))
            if reason != SAME_AS_RECIPE:
                skipped_outputs += _outputs(cmd)
            continue
        plan.run.append((cmd, list(SCALE_DOWN.get(cmd.script() or "", []))))
    return plan


def describe(plans: dict[str, Plan]) -> str:
    lines = []
    for readme, plan in plans.items():
        for cmd, extra in plan.run:
            lines.append(f"RUN  {cmd.id}: {cmd.text}" + (f"  [+ {' '.join(extra)}]" if extra else ""))
        for cmd, why in plan.skipped:
            lines.append(f"SKIP {cmd.id}: {cmd.text}  ({why})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- running
def copy_repository(dest: Path, root: Path = ROOT) -> Path:
    """Copy the files git sees (tracked + new, not ignored) of ``root`` into ``dest``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=root, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but outputs
        skip = {".git", "runs", "outputs", "__pycache__", ".pytest_cache", ".cache", "build", "dist"}
        listed = [p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(root).parts)]
    for rel in filter(None, listed):
        src = root / rel
        if src.is_file():  # deleted in the working tree but still tracked: not there for a user either
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def command_env(copy: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODALINK_", "HF_", "TORCH_", "ACCELERATE_", "CUDA_", "PYTEST_"))}
    env.update({
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        "PYTHONPATH": str(copy),  # the copy's modalink, not the editable install's
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(home),  # no user config (accelerate, caches) leaks in
        "XDG_CACHE_HOME": str(home / ".cache"),
        "MODALINK_HOME": str(home / "modalink"),
        "HF_HOME": str(home / "hf"),
        "TORCH_HOME": str(home / "torch"),
        "MODALINK_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    return env


@dataclass
class Outcome:
    """What running one README's commands gave: per-command times, and the first failure."""

    timings: list[str] = field(default_factory=list)
    failure: str | None = None


def _failure(cmd: Command, line: str, why: str, output: str) -> str:
    errors = [ln for ln in output.splitlines() if re.match(r"^(error|\w*Error)\b", ln.strip())]
    shown = "\n".join(dict.fromkeys(errors))  # the command's own one-line errors first, once each
    return (f"{cmd.id}: README command {why}:\n  {line}\n"
            + (f"--- error lines ---\n{shown}\n" if shown else "")
            + f"--- output (tail) ---\n{output[-3000:]}")


def run_readme(readme: str, workdir: Path) -> Outcome:
    """Run the planned commands of ``readme`` in order in a fresh copy under ``workdir``."""
    out = Outcome()
    copy = copy_repository(workdir / "repo")
    env = command_env(copy, workdir / "home")
    probe = subprocess.run([sys.executable, "-c", "import modalink; print(modalink.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True)
    if not probe.stdout.strip().startswith(str(copy)):  # the copy must be what runs
        out.failure = f"the copy's modalink is not the one imported: {probe.stdout}{probe.stderr}"
        return out
    for cmd, extra in PLANS[readme].run:
        line = cmd.text + "".join(" " + shlex.quote(a) for a in extra)
        t0 = time.time()
        try:
            proc = subprocess.run(["bash", "-c", line], cwd=copy, env=env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            out.failure = _failure(cmd, line, f"ran over {COMMAND_TIMEOUT_S} s", output)
            return out
        took = time.time() - t0
        out.timings.append(f"{took:5.1f} s  {cmd.id}")
        if proc.returncode != 0:
            out.failure = _failure(cmd, line, f"failed (exit {proc.returncode}) after {took:.0f} s",
                                   proc.stdout + proc.stderr)
            return out
    return out


ALL_COMMANDS = readme_commands()
PLANS = {readme: plan_readme([c for c in ALL_COMMANDS if c.readme == readme], ALL_COMMANDS)
         for readme in readme_paths()}


# ----------------------------------------------------------------------------- fast checks
def test_parser_joins_continuations_and_drops_comments():
    text = ("intro\n```bash\n# a comment\npython a.py --x 1 \\\n    --y 2   # trailing\n\n"
            "python b.py \"k=[1, 2]\" 'x # not a comment'\n```\n```python\nprint('no')\n```\n"
            "```sh\npython c.py#hash-in-word\n```\n")
    cmds = parse_commands(text, "R.md")
    assert [(c.line, c.text) for c in cmds] == [
        (4, "python a.py --x 1 --y 2"), (7, "python b.py \"k=[1, 2]\" 'x # not a comment'"),
        (13, "python c.py#hash-in-word")]


def test_every_readme_command_is_run_or_skipped_by_a_rule():
    assert {"README.md", "recipes/srmm/README.md", "recipes/chameleon/README.md", "recipes/fame/README.md",
            "recipes/recsys/README.md"} <= set(PLANS)
    seen = [c for p in PLANS.values() for c, _ in p.run] + [c for p in PLANS.values() for c, _ in p.skipped]
    assert sorted(seen, key=lambda c: (c.readme, c.line)) == sorted(ALL_COMMANDS, key=lambda c: (c.readme, c.line))
    rules = {why for why, _ in SKIP_RULES} | {NEEDS_SKIPPED_OUTPUT, SAME_AS_RECIPE}
    assert all(why in rules for p in PLANS.values() for _, why in p.skipped)
    run = {c.text for p in PLANS.values() for c, _ in p.run}
    # the quick starts that need no download are run, not skipped
    for quick in ("python recipes/srmm/train.py", "python recipes/chameleon/train.py",
                  "accelerate launch recipes/fame/train.py", "python recipes/recsys/train.py --output-dir runs/recsys"):
        assert quick in run, quick
    # nothing that reads /data or downloads weights is run
    assert not [t for t in run if re.search(r"/data/|/models/|~/", t)]
    print("\nREADME commands:\n" + describe(PLANS))  # shown with -s


def test_readme_commands_name_existing_scripts():
    """Every script a README command names (run or skipped) exists in the repository."""
    missing = [f"{c.id}: {c.script()}" for c in ALL_COMMANDS if c.script() and not (ROOT / c.script()).is_file()]
    modules = [(c, t) for c in ALL_COMMANDS for i, t in enumerate(c.tokens()[1:], 1)
               if c.tokens()[i - 1] == "-m" and t not in ("pytest", "pip")]
    missing += [f"{c.id}: -m {m}" for c, m in modules
                if not ((ROOT / m.replace(".", "/")).is_dir() or (ROOT / (m.replace(".", "/") + ".py")).is_file())]
    assert not missing, missing


# ----------------------------------------------------------------------------- the runs
RUNNABLE = [r for r, p in PLANS.items() if p.run]
#: README sequences run side by side (each command is single-threaded); env MODALINK_README_JOBS.
JOBS = int(os.environ.get("MODALINK_README_JOBS", "0") or 0) or max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def readme_runs(request, tmp_path_factory):
    """Start the README sequences of the selected tests at once, ``JOBS`` at a time (longest plans
    first); each test then waits for its own README's outcome."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = [item.callspec.params["readme"] for item in request.session.items
              if getattr(item, "originalname", None) == "test_readme_quick_starts_run_as_written"
              and hasattr(item, "callspec")]
    order = sorted(dict.fromkeys(wanted), key=lambda r: -len(PLANS[r].run))
    pool = ThreadPoolExecutor(max_workers=JOBS)
    futures = {r: pool.submit(run_readme, r, tmp_path_factory.mktemp(Path(r).parent.name or "root"))
               for r in order}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("readme", RUNNABLE)
def test_readme_quick_starts_run_as_written(readme, readme_runs):
    outcome = readme_runs[readme].result()
    print("\n" + "\n".join(outcome.timings))
    if outcome.failure:
        pytest.fail(outcome.failure, pytrace=False)
