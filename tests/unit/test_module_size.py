"""The module size check: it names every module over the limit outside the tests, and fails."""

from __future__ import annotations

from pathlib import Path

from tools.module_size import main, oversized


def write_lines(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"x{i} = {i}\n" for i in range(count)), encoding="utf-8")


def test_every_module_over_the_limit_is_listed_longest_first_and_the_check_fails(tmp_path, capsys):
    write_lines(tmp_path / "shared" / "long.py", 12)
    write_lines(tmp_path / "services" / "a" / "longer.py", 15)
    write_lines(tmp_path / "services" / "a" / "at_the_limit.py", 10)
    write_lines(tmp_path / "tests" / "test_long.py", 50)  # tests may be longer
    write_lines(tmp_path / ".venv" / "lib" / "site.py", 50)  # not the project's
    write_lines(tmp_path / "services" / "notes.txt", 50)  # not Python

    assert oversized(tmp_path, 10) == [
        (Path("services/a/longer.py"), 15),
        (Path("shared/long.py"), 12),
    ]
    assert main([str(tmp_path), "--limit", "10"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("services/a/longer.py: 15 lines, more than 10")
    assert printed[1].startswith("shared/long.py: 12 lines, more than 10")


def test_the_check_passes_when_every_module_is_within_the_limit(tmp_path, capsys):
    write_lines(tmp_path / "gateway" / "app.py", 10)
    assert main([str(tmp_path), "--limit", "10"]) == 0
    assert capsys.readouterr().out == ""
