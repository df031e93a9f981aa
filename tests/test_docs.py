"""Documentation that cannot rot: every experiment command in the docs names
a config and variant that resolve and only fields that exist (the commands
are read, not run)."""

import importlib
import pathlib
import re
import shlex
import tomllib

import pytest

from ntkjax.experiments import data as data_main

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ["README.md", "BUILD.md", "BENCHMARKS.md", "docs/results.md", "docs/design.md",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "results").glob("*.md")),
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "results").glob("*/README.md"))]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
_COMMAND = re.compile(r"(?:python -m experiments\.\w+|\bntkjax-[\w-]+)(?=\s|$)")


def commands(text: str) -> list[str]:
  """Each experiment command in ``text``'s code: in fenced blocks (lines
  joined at a trailing backslash) and inline code spans (which may wrap),
  from ``python -m experiments.X`` or ``ntkjax-X`` to the end of the line
  or span, a comment or a shell separator."""
  spans = []
  for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
    spans += re.sub(r"\\\n\s*", " ", block).splitlines()
  spans += [m.replace("\n", " ") for m in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
  out = []
  for span in spans:
    for m in _COMMAND.finditer(span):
      command = re.split(r"\s#|;|\s&|\s\|", span[m.start():])[0].strip()
      for quote in "\"'":  # a command quoted inside another (--command="ntkjax-...") ends at its quote
        if command.count(quote) % 2:
          command = command[:command.rindex(quote)].strip()
      out.append(" ".join(command.split()))
  return out


def _fields(config, prefix=""):
  for k, v in config.items():
    if hasattr(v, "items"):
      yield f"{prefix}{k}"
      yield from _fields(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}"


def check(command: str) -> None:
  """Raises AssertionError (or the config's ValueError) where ``command``
  would not resolve."""
  words = shlex.split(command)
  if words[0] == "python":
    module = words[2]
    assert (ROOT / (module.replace(".", "/") + ".py")).exists(), f"no module {module}"
    study, args = module.split(".")[1], words[3:]
  else:
    assert words[0] in SCRIPTS, f"{words[0]} is not a console script of pyproject.toml"
    study, args = SCRIPTS[words[0]].split(":")[0].rsplit(".", 1)[1], words[1:]
  if study == "data":  # ntkjax-data STUDY:VARIANT ...
    for arg in (a for a in args if not a.startswith("-") and a != "STUDY:VARIANT"):
      name, _, variant = arg.partition(":")
      data_main._config(name, variant)
    return
  config_arg = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
  if config_arg is None and "--config" in args:
    config_arg = args[args.index("--config") + 1]
  config_arg = config_arg or f"configs/{study}.py"
  path, _, variant = config_arg.partition(":")
  if not path.endswith(".py"):  # a bare variant picks the experiment's own config
    path, variant = f"configs/{study}.py", config_arg
  assert (ROOT / path).exists(), f"no config file {path}"
  config = importlib.import_module(path[:-3].replace("/", ".")).get_config(variant or None)
  known = set(_fields(config))
  for a in args:
    if a.startswith("--config."):
      field = a[len("--config."):].split("=", 1)[0]
      assert field in known, f"--config.{field} is not a field of {config_arg}"


def _documented():
  for doc in DOCS:
    path = ROOT / doc
    if path.exists():
      for c in commands(path.read_text()):
        yield pytest.param(c, id=f"{doc}: {c[:80]}")


@pytest.mark.parametrize("command", list(_documented()))
def test_documented_command_resolves(command):
  check(command)


def test_the_docs_hold_commands_for_every_experiment():
  found = {c.split()[0] if c.startswith("ntkjax-") else c.split()[2] for d in DOCS if (ROOT / d).exists()
           for c in commands((ROOT / d).read_text())}
  for script, target in SCRIPTS.items():
    assert script in found or target.split(":")[0] in found, f"no documented command runs {script}"


def test_the_check_catches_a_wrong_variant_field_or_config():
  check("python -m experiments.score --config configs/score.py:small --config.space.num_archs=3 --workdir W")
  check("ntkjax-score --config small,nb101 --workdir W")
  with pytest.raises(ValueError, match="unknown config variant 'smal'"):
    check("python -m experiments.score --config configs/score.py:smal --workdir W")
  with pytest.raises(AssertionError, match="space.num_arch is not a field"):
    check("ntkjax-score --config small --config.space.num_arch=3 --workdir W")
  with pytest.raises(AssertionError, match="no config file"):
    check("python -m experiments.score --config configs/scores.py --workdir W")
  with pytest.raises(AssertionError, match="not a console script"):
    check("ntkjax-scores --config small --workdir W")
  doc = ("```bash\npython -m experiments.deciles --config \\\n    configs/deciles.py:cpu --workdir W  # ~10 min\n```\n"
         "or (`ntkjax-deciles --config\ncpu --workdir W`), or `ssh h --command=\"ntkjax-deciles --config cpu\"`.")
  assert commands(doc) == ["python -m experiments.deciles --config configs/deciles.py:cpu --workdir W",
                           "ntkjax-deciles --config cpu --workdir W", "ntkjax-deciles --config cpu"]


def test_ci_runs_the_readme_test_command():
  readme = (ROOT / "README.md").read_text()
  ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd ", "export "))]
  blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
  assert ci[0] in blocks, "the README's test command and .ci/run differ"
  # then the fast subset as a fresh clone runs it: the shared data hidden (tests/conftest.py)
  assert ci[1].startswith("NTKJAX_TEST_SHARED_DATA=none python -m pytest") and '-m "not slow"' in ci[1]
  assert len([b for b in blocks if b.startswith("pip install")]) >= 2  # main job and tests


_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s#]+)(?:#[^)]*)?\)")


def broken_links(doc: str, text: str) -> list[str]:
  """Relative links in ``text`` (the file ``doc``) to files that do not
  exist, and links titled with a run folder's name (`` `name` ``) that lead
  to another folder."""
  bad = []
  for title, target in _LINK.findall(text):
    if re.match(r"[a-z]+:", target):
      continue  # http(s), mailto: not checked offline
    path = (ROOT / doc).parent / target
    if not path.exists():
      bad.append(f"{doc}: {target} does not exist")
    name = re.fullmatch(r"`([\w.-]+)`", title)
    if name and path.parent.parent.name == "results" and path.parent.name != name[1]:
      bad.append(f"{doc}: [{title}] leads to {target}")
  return bad


def test_links_lead_to_existing_files_and_the_named_run():
  assert [b for d in DOCS if (ROOT / d).exists() for b in broken_links(d, (ROOT / d).read_text())] == []
  doc = "docs/results.md"
  assert broken_links(doc, "[`rc_cpu`](results/rc_cpu/README.md) and [x](missing.md)") == [
      f"{doc}: missing.md does not exist"]
  assert broken_links(doc, "[`table1_darts_cpu`](results/table1_nb101_cpu/README.md)") == [
      f"{doc}: [`table1_darts_cpu`] leads to results/table1_nb101_cpu/README.md"]


# Where the docs and the code name BENCHMARKS.md: the prose docs, and the code's docstrings and comments.
_PROSE = ["README.md", "BUILD.md", "docs/design.md", "docs/results.md", "docs/results/*.md", "docs/results/*/README.md"]
_CODE = ["ntkjax/**/*.py", "configs/*.py", "experiments/*.py", "benchmarks/*.py", "benchmarks/*.sh"]
_NAMED = re.compile(r"""BENCHMARKS\.md,\s+((?:["'][^"']+["'](?:,?\s+and\s+|,\s+)?)+)""")


def _flat(text: str) -> str:
  """Lines joined, comment and docstring continuations included."""
  return re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)


def benchmark_references(patterns) -> dict[str, list[str | None]]:
  """File -> the BENCHMARKS.md section each mention names (None: names none)."""
  out = {}
  for pattern in patterns:
    for path in sorted(ROOT.glob(pattern)):
      text = _flat(path.read_text())
      refs = []
      for m in re.finditer(r"BENCHMARKS\.md", text):
        named = _NAMED.match(text, m.start())
        refs += re.findall(r"""["']([^"']+)["']""", named.group(1)) if named else [None]
      if refs:
        out[str(path.relative_to(ROOT))] = refs
  return out


def test_every_benchmarks_section_the_docs_or_code_name_exists():
  sections = set(re.findall(r"(?m)^#+ (.+?)\s*$", (ROOT / "BENCHMARKS.md").read_text()))
  missing = [(f, r) for f, refs in benchmark_references(_PROSE + _CODE).items() for r in refs
             if r is not None and r not in sections]
  assert missing == []
  # the code names a section, never just the file (its numbers live there, not in docstrings)
  bare = [f for f, refs in benchmark_references(_CODE).items() if None in refs]
  assert bare == []
  assert benchmark_references.__doc__ and _NAMED.match('BENCHMARKS.md, "A" and "B"').group(1) == '"A" and "B"'
