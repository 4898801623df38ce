"""Load and save model directories (teachers, students, task.json, vocabulary and weight checks)."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import paddle
from paddlenlp.transformers import AutoTokenizer, ErnieModel

from ernie_tiny_distill import extensions
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import convert, hf_files, pruned_ernie
from ernie_tiny_distill.models.locate import (  # noqa: F401
    MINILM,
    cache_root,
    minilm_available,
    minilm_path,
    paraphrase_minilm_l3_dir,
    resolve,
)
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

TASK_FILE = "task.json"


# ---------------------------------------------------------------- locating checkpoints


def read_task_metadata(path: str) -> Optional[Dict]:
    file = os.path.join(path, TASK_FILE)
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def load_tokenizer(spec: str):
    """The tokenizer of a model; for a local directory checked against the model (check_vocab)."""
    path = resolve(spec)
    if os.path.isdir(path) and hf_files.is_hf_bert_dir(path):
        tokenizer = hf_files.load_tokenizer(path)
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except Exception as e:  # PaddleNLP raises assorted errors for a missing name or no network
            raise UserError(f"could not load a tokenizer from {spec!r}: {e}",
                            hint="offline, use a local directory (or model.teacher=minilm)") from None
    if os.path.isdir(path):
        check_vocab(path, tokenizer)
    return tokenizer


def vocab_record(tokenizer) -> Dict:
    """{"size", "blake2b"} of the vocabulary in id order: recorded in task.json and export.json, checked on load."""
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    digest = hashlib.blake2b("\n".join(tokens).encode("utf-8"), digest_size=16).hexdigest()
    return {"size": len(tokens), "blake2b": digest}


def _embedding_rows(path: str) -> Optional[int]:
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            rows = json.load(f).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return None
    return rows if isinstance(rows, int) else None


def check_vocab(path: str, tokenizer) -> None:
    """The vocabulary files of a model directory must be the model's: no more tokens than word-embedding rows
    (larger ids would index past the table), and the very vocabulary task.json recorded at training (a shuffled
    one of the same size maps words to other rows and gives wrong answers without an error)."""
    record, rows = vocab_record(tokenizer), _embedding_rows(path)
    if rows is not None and record["size"] > rows:
        raise UserError(f"the vocabulary has {record['size']} tokens but the model's word embeddings have {rows} "
                        "rows (config.json vocab_size)", where=os.path.join(path, "vocab.txt"),
                        hint="restore the vocab.txt this model was trained with")
    meta = read_task_metadata(path)
    expected = (meta or {}).get("vocab") if isinstance(meta, dict) else None
    if expected and expected != record:
        raise UserError(f"the vocabulary is not the one this model was trained with ({record['size']} tokens, "
                        f"blake2b {record['blake2b']}; task.json records {expected.get('size')} tokens, blake2b "
                        f"{expected.get('blake2b')})", where=os.path.join(path, "vocab.txt"),
                        hint="restore the vocab.txt this model was trained with")


def load_model(spec: str, model_class, num_labels: Optional[int] = None, dropout: Optional[float] = None):
    """A PaddleNLP model of `model_class` from a name, a PaddleNLP directory or a Hugging Face BERT directory.

    Weights absent from the checkpoint (a new task head) are initialised randomly, as in from_pretrained.
    """
    path = resolve(spec)
    overrides = {}
    if num_labels is not None:
        overrides["num_labels"] = num_labels
    if dropout is not None:
        overrides.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if os.path.isdir(path) and hf_files.is_hf_bert_dir(path):
        config, state, _has_mlm = convert.load_hf_bert(path)
        for key, value in overrides.items():
            setattr(config, key, value)
        model = model_class(config)
        _load_base_state(model, state, source=path)
        return model
    stored = None
    if os.path.isdir(path):
        _check_pickle_free(path)
        stored = checkpoint_keys(path)
        if _is_pruned_dir(path):
            model_class = pruned_ernie.pruned_class(model_class)
    try:
        model = model_class.from_pretrained(path, **overrides)
    except Exception as e:
        raise UserError(f"could not load model {spec!r} as {model_class.__name__}: {e}") from None
    if stored is not None:
        _check_all_encoder_weights_used(model, stored, path)
    if os.path.isdir(path):
        _check_saving_stage_installed(path)
    return extensions.attach(model, path)  # parts an installed extension saved beside the transformer


def _check_saving_stage_installed(path: str) -> None:
    """A model saved by an extension's stage may hold parts only that extension reads: without it the transformer
    alone would answer, differently and silently."""
    from ernie_tiny_distill.config_rules import STAGES

    try:
        stage = (read_task_metadata(path) or {}).get("stage")
    except (OSError, ValueError, AttributeError):
        return  # an unreadable task.json is reported by the readers that need it
    if isinstance(stage, str) and stage not in STAGES:
        raise UserError(f"saved by stage {stage!r}: {extensions.missing(f'stage {stage!r}')}",
                        where=os.path.join(path, TASK_FILE), hint=extensions.INSTALL_HINT)


def _is_pruned_dir(path: str) -> bool:
    """A student pruned from its teacher (per-layer head counts and FFN widths in config.json)."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("layer_heads") is not None
    except (OSError, ValueError):
        return False


def _check_pickle_free(path: str) -> None:
    """Refuse directories without the safetensors weights PaddleNLP looks for first: it would fall back to
    pickled .pdparams, and loading pickles can run code. (Any other *.safetensors file does not count.)"""
    if not any(os.path.isfile(os.path.join(path, f)) for f in ("model.safetensors", "model.safetensors.index.json")):
        raise UserError(
            f"{path} has no .safetensors weights; only safetensors checkpoints are loaded",
            hint="convert a trusted .pdparams checkpoint once with "
                 "`python tools/convert_checkpoint.py --src DIR --dst NEW_DIR --allow-pickle`",
        )


def checkpoint_keys(path: str) -> List[str]:
    """The tensor names of a safetensors model directory (one file, or the shards its index names), each file
    checked to be readable: a truncated file or a missing shard is named, not reported as the whole folder."""
    from safetensors import safe_open

    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"unreadable shard index ({e})", where=index) from None
        for shard in shards:
            if not os.path.isfile(os.path.join(path, shard)):
                raise UserError(f"names shard {shard}, which is missing", where=index,
                                hint="restore the missing shard (or re-save the model)")
    else:
        shards = ["model.safetensors"]
    keys = []
    for shard in shards:
        file = os.path.join(path, shard)
        try:
            with safe_open(file, framework="np") as f:
                keys += list(f.keys())
        except Exception as e:  # SafetensorError / OSError: truncated or corrupt header
            raise UserError(f"cannot read the weights: the file is truncated or corrupt ({str(e)[:120]})",
                            where=file, hint="re-copy or re-train the checkpoint") from None
    return keys


def _check_all_encoder_weights_used(model, stored: Sequence[str], path: str) -> None:
    """Encoder weights of the checkpoint that the model built from config.json has no place for (e.g. a config
    with fewer layers) would run a truncated model: an error, not PaddleNLP's warning. Heads (classifier, MLM)
    may go unused: a fine-tuned teacher serves as an encoder too."""
    def base(key: str) -> str:
        return key[len("ernie."):] if key.startswith("ernie.") else key

    own = {base(k) for k in model.state_dict()}
    unused = sorted(k for k in map(base, stored) if k.startswith(("encoder.", "embeddings.")) and k not in own)
    if unused:
        config = encoder_of(model).config
        raise UserError(f"the checkpoint has {len(unused)} encoder weights that a model built from this config "
                        f"(num_hidden_layers {config.num_hidden_layers}) would leave unused, e.g. "
                        f"{', '.join(unused[:3])}", where=os.path.join(path, "config.json"),
                        hint="restore the config.json saved with these weights")


def _load_base_state(model, state: Dict, source: str) -> None:
    """Load bare-encoder weights (ErnieModel names) into `model`, adding the `ernie.` prefix for head classes."""
    own = model.state_dict()
    prefixed = {}
    for key, value in state.items():
        target = key if key in own else f"ernie.{key}"
        if target in own:
            prefixed[target] = value
    missing = [k for k in own if k not in prefixed]
    encoder_missing = [k for k in missing if ".encoder." in k or ".embeddings." in k or k.startswith("encoder.")]
    if encoder_missing:
        raise UserError(f"{source}: checkpoint lacks encoder weights such as {encoder_missing[:3]}")
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in prefixed.items()})
    if missing:
        logger.info("newly initialised (not in %s): %s", source, ", ".join(missing))


# ---------------------------------------------------------------- students


def encoder_of(model) -> ErnieModel:
    return model if isinstance(model, ErnieModel) else model.ernie


def num_layers(model) -> int:
    return encoder_of(model).config.num_hidden_layers


def hidden_size(model) -> int:
    return encoder_of(model).config.hidden_size


# ---------------------------------------------------------------- model directories


def save_model_dir(model, tokenizer, path: str, metadata: Dict) -> None:
    """Write config.json + model.safetensors + tokenizer files + task.json to `path`, atomically.

    Everything goes to a temporary sibling first; a crash never leaves a half-written `path`.
    """
    from safetensors import SafetensorError

    try:
        with fsutil.atomic_dir(path) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            if getattr(model, "document_table", None) is not None:  # added after pooling (extensions.py)
                model.document_table.save(tmp)
            tokenizer.save_pretrained(tmp)
            metadata = {**metadata, "vocab": vocab_record(tokenizer)}  # checked on load (check_vocab)
            metadata.update(extensions.document_table_metadata(model))  # checked on load by its extension
            with open(os.path.join(tmp, TASK_FILE), "w", encoding="utf-8") as f:
                json.dump(metadata, f, indent=2)
    except (OSError, SafetensorError) as e:
        # safetensors reports a full disk as SafetensorError("... Os { code: 28 ... }")
        full = getattr(e, "errno", None) == errno.ENOSPC or "code: 28" in str(e) or "os error 28" in str(e)
        raise UserError(f"could not write the model: {'no space left on device' if full else e}", where=path,
                        hint="free some space and re-run (the previous model there, if any, is untouched)") from None
