"""taskiq 0.13.0's own tests, with `taskiq` renamed to `podiq`, run against podiq.

    python bench/taskiq_suite.py [--cache DIR] [--keep] [-- PYTEST ARGS]

Measures how far "a taskiq project moves to podiq by renaming its imports" holds. The sdist
of taskiq 0.13.0 (which ships its tests) is downloaded once with pip into the cache
(~/.cache/podiq/taskiq-sdist); the in-scope test files are copied to a temporary directory,
every `taskiq` word in them becomes `podiq`, and pytest runs them there with this interpreter.
Prints passed and failed per file and the total; the exit code is pytest's only when pytest
itself could not run (a failing test is a figure here, not an error).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "0.13.0"
SDIST = f"taskiq-{VERSION}.tar.gz"
DEFAULT_CACHE = Path.home() / ".cache" / "podiq" / "taskiq-sdist"

#: The files in scope and how many tests each holds, as collected against taskiq 0.13.0 itself
#: (where all 111 pass). A file that fails to import counts all of its tests as failed.
IN_SCOPE: dict[str, int] = {
    "tests/abc/test_broker.py": 8,
    "tests/brokers/test_inmemory.py": 8,
    "tests/depends/test_progress_tracker.py": 5,
    "tests/test_task.py": 4,
    "tests/test_kicker.py": 3,
    "tests/test_result.py": 6,
    "tests/test_funcs.py": 3,
    "tests/test_requeue.py": 2,
    "tests/test_state.py": 6,
    "tests/test_exceptions_flow.py": 4,
    "tests/test_retry_task.py": 5,
    "tests/middlewares/test_simple_retry.py": 3,
    "tests/middlewares/test_task_retry.py": 15,
    "tests/api/test_scheduler.py": 2,
    "tests/scheduler/test_interval_performance.py": 1,
    "tests/scheduler/test_interval_validation.py": 15,
    "tests/scheduler/test_label_based_sched.py": 6,
    "tests/scheduler/test_merge_funcs.py": 2,
    "tests/scheduler/test_scheduled_task.py": 6,
    "tests/scheduler/test_scheduler.py": 1,
    "tests/scheduler/test_scheduling_identity.py": 6,
}
#: Shared by the files above (fixtures, the queue broker some of them use).
SUPPORT = ["tests/__init__.py", "tests/conftest.py", "tests/utils.py", "tests/scheduler/__init__.py"]

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 60
"""


@dataclass
class FileResult:
    path: str
    expected: int
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    import_error: str = ""

    @property
    def failed_count(self) -> int:
        # Tests that never ran (the file did not import) count as failed.
        return self.expected - self.passed


def sdist(cache: Path) -> Path:
    """The cached sdist, downloaded with pip the first time."""
    archive = cache / SDIST
    if not archive.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"taskiq=={VERSION}",
                "--dest",
                str(cache),
            ],
            check=True,
        )
    return archive


def renamed(text: str) -> str:
    """Every `taskiq` word becomes `podiq` (TaskiqScheduler, taskiq_dependencies stay)."""
    return re.sub(r"\btaskiq\b", "podiq", text)


#: With --kiq-returns-task: `task.kiq()` returns what `task.kicker().kiq()` does, as in taskiq,
#: to tell the failures due to that one deliberate difference apart from the rest.
KIQ_RETURNS_TASK = """

import podiq._decor


async def _kiq_as_in_taskiq(self, *args, **kwargs):
    return await self.kicker().kiq(*args, **kwargs)


podiq._decor.AsyncTaskiqDecoratedTask.kiq = _kiq_as_in_taskiq
"""


def prepare(archive: Path, workdir: Path, kiq_returns_task: bool = False) -> None:
    prefix = f"taskiq-{VERSION}/"
    wanted = set(IN_SCOPE) | set(SUPPORT)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            relative = member.name.removeprefix(prefix)
            if relative not in wanted:
                continue
            source = tar.extractfile(member)
            assert source is not None
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(renamed(source.read().decode()))
    missing = wanted - {str(p.relative_to(workdir)) for p in workdir.rglob("*.py")}
    if missing:
        raise SystemExit(f"{archive} lacks {sorted(missing)}; is it taskiq {VERSION}'s sdist?")
    (workdir / "pytest.ini").write_text(PYTEST_INI)
    if kiq_returns_task:
        with (workdir / "tests" / "conftest.py").open("a") as conftest:
            conftest.write(KIQ_RETURNS_TASK)


def run(workdir: Path, extra: list[str]) -> dict[str, FileResult]:
    report = workdir / "report.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        f"--junitxml={report}",
        *IN_SCOPE,
        *extra,
    ]
    completed = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if not report.exists():
        raise SystemExit(f"pytest did not run (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    results = {path: FileResult(path, expected) for path, expected in IN_SCOPE.items()}
    for case in ElementTree.parse(report).iter("testcase"):
        path = _file_of(case)
        if path not in results:
            continue
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if problem is None:
            results[path].passed += 1
        elif not case.get("classname"):  # a collection error: the file did not import
            lines = (problem.text or problem.get("message") or "import failed").strip().splitlines()
            results[path].import_error = lines[-1]
        else:
            reason = (problem.get("message") or problem.tag).strip().splitlines()
            results[path].failed.append(f"{case.get('name')}: {reason[0] if reason else problem.tag}")
    return results


def _file_of(case: ElementTree.Element) -> str:
    file = case.get("file")
    if file:
        return file
    # junit names a test by its dotted module path ("tests.abc.test_broker"); a file that
    # failed to import is a case with no class, named by that path.
    classname = case.get("classname") or case.get("name") or ""
    for path in IN_SCOPE:
        dotted = path.removesuffix(".py").replace("/", ".")
        if classname == dotted or classname.startswith(dotted + "."):
            return path
    return classname


def measure(
    cache: Path = DEFAULT_CACHE,
    kiq_returns_task: bool = False,
    pytest_args: list[str] | None = None,
    keep: bool = False,
) -> dict[str, FileResult]:
    """Run the renamed tests once; the results per file."""
    workdir = Path(tempfile.mkdtemp(prefix="podiq-taskiq-suite-"))
    try:
        prepare(sdist(cache), workdir, kiq_returns_task)
        return run(workdir, pytest_args or [])
    finally:
        if keep:
            print(f"renamed tests kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the sdist is kept")
    parser.add_argument("--keep", action="store_true", help="keep the renamed tests and print where")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--kiq-returns-task",
        action="store_true",
        help="make task.kiq() return an AsyncTaskiqTask as taskiq's does (a measure, not podiq's API)",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after --")
    args = parser.parse_args(argv)

    results = measure(args.cache, args.kiq_returns_task, args.pytest_args, keep=args.keep)

    passed = sum(r.passed for r in results.values())
    failed = sum(r.failed_count for r in results.values())
    if args.json:
        print(
            json.dumps(
                {
                    "passed": passed,
                    "failed": failed,
                    "files": {p: {"passed": r.passed, "failed": r.failed_count} for p, r in results.items()},
                }
            )
        )
        return 0
    width = max(map(len, results))
    variant = ", with task.kiq() returning an AsyncTaskiqTask" if args.kiq_returns_task else ""
    print(f"taskiq {VERSION}'s tests, renamed to podiq{variant}\n")
    print(f"{'file':<{width}}  passed  failed")
    for result in results.values():
        print(f"{result.path:<{width}}  {result.passed:>6}  {result.failed_count:>6}")
        if result.import_error:
            print(f"    does not import: {result.import_error}")
        for failure in result.failed:
            print(f"    {failure[:160]}")
    print(f"\nin total {passed} of {passed + failed} pass ({failed} fail)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
