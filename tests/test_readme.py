"""The README's Python API example, run exactly as printed on a small made-up DataFrame."""

import re
from pathlib import Path

from synthetic import cyclic_frame

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    """The first Python code block of the README's "Python API" section."""
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    code = python_api_example()
    assert len(code.splitlines()) <= 6
    monkeypatch.chdir(tmp_path)
    df = cyclic_frame().rename({"user": "user_id", "item": "item_id"})  # 60 users, 20 items
    namespace = {"df": df}
    exec(compile(code, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "rank" in printed and "score" in printed
    saved = tmp_path / "my-sasrec"
    assert {"model.safetensors", "recommender.json"} <= {p.name for p in saved.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["my-sasrec"]  # nothing else written
    loaded = namespace["model"]  # what the last line read back
    top = loaded.recommend(["u1", "u2"], k=10)
    assert top.height == 20 and top["user"].unique().sort().to_list() == ["u1", "u2"]
    assert set(top["item"]) <= set(df["item_id"])
