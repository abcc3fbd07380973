"""Checkpoints: what a training run saves and how it is loaded back, safely (torch.load with weights_only=True:
tensors and plain values only, so a run directory from elsewhere cannot run code), with the RNG states for exact
resume."""

from __future__ import annotations

import os
import pickle
import random
import uuid
import zipfile
from typing import Any

import numpy as np
import torch

from curate.errors import InputError
from curate.train.model import LLaMA, ModelConfig
from curate.train.tokenizer import Tokenizer

CHECKPOINT = "ckpt.pt"

# Version of the checkpoint layout. 2: tensors and plain Python values only, so torch.load(weights_only=True) reads
# it and loading a run directory from elsewhere cannot run code. 1 (unversioned) pickled numpy's RNG state.
CHECKPOINT_FORMAT = 2


def rng_state() -> dict[str, Any]:
    """Every generator the loop may draw from (torch, numpy, Python, CUDA), as tensors and plain values."""
    np_state = np.random.get_state(legacy=False)  # MT19937: a dict, unlike the legacy tuple
    version, words, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": version, "state": list(words), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() recorded, exactly."""
    # .cpu(): the checkpoint may have been loaded with map_location on the GPU; generator states live on the host
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].cpu().numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves a half checkpoint."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by save_checkpoint (a file, or a run directory holding ckpt.pt).

    Read with weights_only=True: tensors and plain values only. A file that pickles anything else is refused
    before any of it is unpickled, so `curate eval` / `generate` on someone else's run directory runs no code."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    if not os.path.exists(path):
        raise InputError(f"no checkpoint at '{path}'", hint="give a run directory made by `curate train`")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise _unloadable(path, e) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise _damaged(path, e) from None
    if isinstance(ck, dict) and "format" not in ck and "model" in ck and "rng" in ck:
        # an older curate's checkpoint that loaded anyway: another library in this process (megatron-core does) has
        # allowed numpy's globals for weights_only loading process-wide; refused all the same
        raise InputError(
            f"{path} was written by an older curate, whose checkpoints pickle numpy's RNG state; they are no longer "
            "loaded, since unpickling can run code",
            hint="train again: `curate train CONFIG --no-resume` (or --out NEW_DIR) writes a checkpoint that loads "
            "safely",
        )
    if not isinstance(ck, dict) or "format" not in ck or "model" not in ck:
        raise InputError(
            f"{path} is not a checkpoint written by `curate train`",
            hint="give a run directory made by `curate train`",
        )
    if ck["format"] != CHECKPOINT_FORMAT:
        raise InputError(
            f"{path} has checkpoint format {ck['format']!r}; this curate reads format {CHECKPOINT_FORMAT}",
            hint="use the curate version that wrote it, or train again",
        )
    return ck


def _unloadable(path: str, error: Exception) -> InputError:
    """The error for a checkpoint that weights_only loading refused: an old curate's, or one that pickles code."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if scan is None:
        return InputError(f"{path} refused: it pickles objects that weights_only loading does not allow ({error})")
    try:
        names = [str(g) for g in scan(path)]  # reads the pickle's opcodes; runs nothing
    except Exception:  # not even a readable archive
        names = []
    if not names:
        return _damaged(path, error)
    if all(n.startswith("numpy.") for n in names):
        # Checkpoints before format 2 pickled numpy's RNG state. They are refused, not converted: reading them
        # means unpickling numpy objects, which torch deliberately does not allow by default.
        return InputError(
            f"{path} was written by an older curate, whose checkpoints pickle numpy's RNG state "
            f"({', '.join(names)}); they are no longer loaded, since unpickling can run code",
            hint="train again: `curate train CONFIG --no-resume` (or --out NEW_DIR) writes a checkpoint that loads "
            "safely",
        )
    return InputError(
        f"{path} refused: besides tensors and plain values it pickles Python objects ({', '.join(names[:5])}), "
        "and loading them could run code",
        hint="load only checkpoints written by `curate train`; train the model again if you need it",
    )


def _damaged(path: str, error: Exception) -> InputError:
    # torch's first sentence says what failed ("... failed finding central directory"); the rest is advice
    reason = (str(error).strip().splitlines() or [type(error).__name__])[-1].split(". ")[0]
    return InputError(
        f"{path} is damaged or not a checkpoint (torch.load: {reason[:200]})",
        hint="a crash or a full disk cut it short: train again with --no-resume (or --out NEW_DIR), "
        "or restore the file from a copy",
    )


def model_from_checkpoint(path: str, device: torch.device | str = "cpu") -> tuple[LLaMA, Tokenizer, dict[str, Any]]:
    """The trained model (eval mode), its tokenizer and the checkpoint's metadata."""
    ck = load_checkpoint(path)
    model = LLaMA(ModelConfig(**ck["model_config"]))
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    tok = Tokenizer.from_str(ck["tokenizer"], ck["eos_token"])
    return model, tok, ck
