"""Build teachers and students (PaddleNLP ERNIE family), select teacher layers, save/load model directories."""
from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddlenlp.transformers import AutoTokenizer, ErnieConfig, ErnieModel

from ernie_tiny_distill.config import StudentConfig
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import convert, pruned_ernie
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
    if os.path.isdir(path) and convert.is_hf_bert_dir(path):
        tokenizer = convert.load_tokenizer(path)
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
    if os.path.isdir(path) and convert.is_hf_bert_dir(path):
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
    from ernie_tiny_distill.wide import document as wide_document
    from ernie_tiny_distill.wide import window as wide

    # a wide-and-deep student (stage 'wide'): the transformer plus its n-gram table
    if os.path.isdir(path) and wide_document.has_document_table(path):
        # document level: added after the windows are pooled (trainer.predict_logits, the Predictor), not in forward
        model.document_table = wide_document.DocumentTable.load(path)
        check_document_table(model.document_table, read_task_metadata(path), encoder_of(model).config.vocab_size,
                             os.path.join(path, wide_document.DOCUMENT_CONFIG), TASK_FILE)
        return model
    return wide.attach(model, path) if os.path.isdir(path) and wide.has_wide(path) else model


def _is_pruned_dir(path: str) -> bool:
    """A student pruned from its teacher (per-layer head counts and FFN widths in config.json)."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("layer_heads") is not None
    except (OSError, ValueError):
        return False


def document_table_record(table) -> Dict:
    """What a document-level wide table's hashing depends on: recorded in task.json / export.json at saving."""
    return {"vocab_size": int(table.spec.vocab_size), "buckets": int(table.spec.buckets),
            "pad_token_id": int(table.spec.pad_token_id), "weighting": table.weighting}


def check_document_table(table, meta: Optional[Dict], rows: int, where: str, recorded_in: str) -> None:
    """A wide_document.json edited after saving hashes n-grams into other slots (wrong answers, no error): its
    vocabulary must be the model's and its settings the ones recorded beside the model."""
    if table.spec.vocab_size != rows:
        raise UserError(f"vocab_size {table.spec.vocab_size}, but the model's word embeddings have {rows} rows",
                        where=where, hint="restore the wide_document.json saved with this model")
    if len(table.slots) and int(table.slots.max()) >= table.spec.rows:
        raise UserError(f"buckets {table.spec.buckets}: the table holds slot {int(table.slots.max())}, beyond the "
                        f"{table.spec.rows} slots of vocab_size + buckets", where=where,
                        hint="restore the wide_document.json saved with this model")
    expected = (meta or {}).get("wide_document") if isinstance(meta, dict) else None
    if expected and expected != document_table_record(table):
        raise UserError(f"settings {document_table_record(table)} differ from the ones {recorded_in} recorded when it "
                        f"was saved ({expected})", where=where,
                        hint="restore the wide_document.json saved with this model")


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


def layers_to_keep(student_cfg: StudentConfig, teacher_layers: int) -> Optional[List[int]]:
    """Teacher layers a student made of teacher layers (teacher_layers / teacher_pruned) keeps; else None."""
    if student_cfg.init not in ("teacher_layers", "teacher_pruned"):
        return None
    if student_cfg.layers:
        layers = list(student_cfg.layers)
    else:
        k = student_cfg.every_k
        layers = list(range(k - 1, teacher_layers, k))
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad or not layers:
        raise UserError(
            f"config key 'model.student.layers' selects layers {layers}, but the teacher has layers "
            f"0..{teacher_layers - 1}"
        )
    if sorted(set(layers)) != layers:
        raise UserError(f"config key 'model.student.layers' must be increasing and distinct, got {layers}")
    return layers


def select_teacher_layers(teacher, layers: Sequence[int], model_class, num_labels: Optional[int] = None):
    """A student of `model_class` whose encoder layer j is a copy of teacher layer layers[j].

    Embeddings, pooler and (when shapes agree) the task head are copied too: the ERNIE-Tiny/TinyBERT
    "parameter trimming" initialisation.
    """
    config = copy.deepcopy(encoder_of(teacher).config)
    config.num_hidden_layers = len(layers)
    if num_labels is not None:
        config.num_labels = num_labels
    student = model_class(config)
    teacher_state = teacher.state_dict()
    teacher_prefix = "" if isinstance(teacher, ErnieModel) else "ernie."
    student_prefix = "" if isinstance(student, ErnieModel) else "ernie."
    new_state = {}
    for key, param in student.state_dict().items():
        base = key[len(student_prefix):] if key.startswith(student_prefix) else None
        if base is not None and base.startswith("encoder.layers."):
            j, rest = base[len("encoder.layers."):].split(".", 1)
            source = f"{teacher_prefix}encoder.layers.{layers[int(j)]}.{rest}"
        elif base is not None:
            source = teacher_prefix + base
        else:
            source = key  # head parameters (classifier.*), copied only from a teacher with the same head
        if source in teacher_state and tuple(teacher_state[source].shape) == tuple(param.shape):
            new_state[key] = teacher_state[source]
    student.set_state_dict(new_state)
    fresh = [k for k in student.state_dict() if k not in new_state]
    if fresh:
        logger.info("student parameters not copied from the teacher (new): %s", ", ".join(fresh))
    return student


def student_from_config(student_cfg: StudentConfig, teacher, model_class, num_labels: Optional[int] = None):
    """A randomly initialised ERNIE sharing the teacher's vocabulary and position/type embedding sizes."""
    t = encoder_of(teacher).config
    num_layers_, hidden, heads, intermediate = student_cfg.shape_for_config_init()
    config = ErnieConfig(
        vocab_size=t.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=num_layers_,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        hidden_act=t.hidden_act,
        max_position_embeddings=t.max_position_embeddings,
        type_vocab_size=t.type_vocab_size,
        pad_token_id=t.pad_token_id,
        hidden_dropout_prob=t.hidden_dropout_prob,
        attention_probs_dropout_prob=t.attention_probs_dropout_prob,
    )
    if num_labels is not None:
        config.num_labels = num_labels
    student = model_class(config)
    if student_cfg.embeddings == "teacher_pca":
        copy_embeddings_pca(teacher, student)
    return student


def pca_basis(matrix: np.ndarray, width: int) -> np.ndarray:
    """[H_teacher, width]: the top `width` principal directions of the rows of `matrix`."""
    centered = matrix - matrix.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)  # vt: [H_teacher, H_teacher]
    return vt[:width].T


def copy_embeddings_pca(teacher, student) -> None:
    """Student embedding tables = teacher tables projected on the word embeddings' top principal directions.

    One basis for word, position and token-type tables keeps their sum (the embedding input) consistent;
    the rescaling keeps the projected rows' typical norm that of the teacher's rows.
    """
    t_emb, s_emb = encoder_of(teacher).embeddings, encoder_of(student).embeddings
    width = s_emb.word_embeddings.weight.shape[1]
    words = t_emb.word_embeddings.weight.numpy()
    if width > words.shape[1]:
        raise UserError(f"model.student.hidden_size ({width}) is wider than the teacher ({words.shape[1]}); "
                        "use model.student.embeddings=random")
    basis = pca_basis(words, width)
    scale = np.linalg.norm(words, axis=1).mean() / max(1e-6, np.linalg.norm(words @ basis, axis=1).mean())
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        source, target = getattr(t_emb, name).weight, getattr(s_emb, name).weight
        if source.shape[0] == target.shape[0]:
            target.set_value((source.numpy() @ basis * scale).astype(target.numpy().dtype))


def build_student(student_cfg: StudentConfig, teacher, teacher_tokenizer, model_class,
                  num_labels: Optional[int] = None, dropout: Optional[float] = None):
    if student_cfg.init == "teacher_layers":
        layers = layers_to_keep(student_cfg, num_layers(teacher))
        student = select_teacher_layers(teacher, layers, model_class, num_labels)
        logger.info("student: teacher layers %s", layers)
    elif student_cfg.init == "config":
        student = student_from_config(student_cfg, teacher, model_class, num_labels)
    else:
        student_tokenizer = load_tokenizer(student_cfg.path)
        check_same_vocab(teacher_tokenizer, student_tokenizer, student_cfg.path)
        student = load_model(student_cfg.path, model_class, num_labels=num_labels)
        if getattr(student, "document_table", None) is not None:
            # added after pooling, outside forward: training the transformer would silently leave it behind
            raise UserError(f"model.student.path {student_cfg.path} has a document-level wide part "
                            "(wide_document.json), which stage training cannot carry on; start from the run its "
                            "stage 'wide' froze (task.json 'wide.deep')", where="config key 'model.student.path'")
    if dropout is not None:
        set_dropout(student, dropout)
    return student


def set_dropout(model, p: float) -> None:
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.Dropout):
            layer.p = p
        if isinstance(layer, paddle.nn.MultiHeadAttention):
            layer.dropout = p


def disable_attention_dropout(model) -> None:
    """Attention maps are distilled as distributions; dropout on them would zero and rescale entries."""
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.MultiHeadAttention):
            layer.dropout = 0.0


def check_same_vocab(teacher_tokenizer, student_tokenizer, where: str) -> None:
    t, s = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if t != s:
        differ = sorted(set(t.items()) ^ set(s.items()))[:3]
        raise UserError(
            f"the student's vocabulary ({len(s)} tokens) differs from the teacher's ({len(t)} tokens), "
            f"e.g. {differ}; distillation needs one tokenizer for both",
            where=where,
        )


LORA_TARGETS = [".*self_attn.q_proj", ".*self_attn.k_proj", ".*self_attn.v_proj", ".*self_attn.out_proj",
                ".*linear1", ".*linear2"]


def add_lora(model, rank: int):
    """Wrap `model` with PaddleNLP LoRA adapters; only adapters and the task head stay trainable."""
    from paddlenlp.peft import LoRAConfig, LoRAModel

    config = LoRAConfig(r=rank, lora_alpha=2 * rank, target_modules=LORA_TARGETS,
                        trainable_modules=[".*classifier.*"], merge_weights=True)
    lora = LoRAModel(model, config)
    lora.mark_only_lora_as_trainable()
    return lora


def merge_lora(lora_model, model_class):
    """A plain `model_class` whose weights are W + scaling·A·B: what distillation and export expect."""
    lora_model.eval()  # with merge_weights=True, eval() folds each adapter into its base weight
    merged = {k: v for k, v in lora_model.model.state_dict().items() if "lora_" not in k}
    plain = model_class(copy.deepcopy(lora_model.model.config))
    plain.set_state_dict(merged)
    lora_model.train()
    return plain


def count_parameters(model) -> Tuple[int, int]:
    """(total, non-embedding) parameter counts; embeddings are the word/position/type tables."""
    total = embedding = 0
    for name, p in model.named_parameters():
        n = int(p.numel())
        total += n
        if "embeddings" in name and "layer_norm" not in name:
            embedding += n
    return total, total - embedding


# ---------------------------------------------------------------- model directories


def save_model_dir(model, tokenizer, path: str, metadata: Dict) -> None:
    """Write config.json + model.safetensors + tokenizer files + task.json to `path`, atomically.

    Everything goes to a temporary sibling first; a crash never leaves a half-written `path`.
    """
    from safetensors import SafetensorError

    try:
        with fsutil.atomic_dir(path) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            if getattr(model, "document_table", None) is not None:  # a document-level wide part (wide_document.py)
                model.document_table.save(tmp)
            tokenizer.save_pretrained(tmp)
            metadata = {**metadata, "vocab": vocab_record(tokenizer)}  # checked on load (check_vocab)
            if getattr(model, "document_table", None) is not None:  # checked on load (check_document_table)
                metadata["wide_document"] = document_table_record(model.document_table)
            with open(os.path.join(tmp, TASK_FILE), "w", encoding="utf-8") as f:
                json.dump(metadata, f, indent=2)
    except (OSError, SafetensorError) as e:
        # safetensors reports a full disk as SafetensorError("... Os { code: 28 ... }")
        full = getattr(e, "errno", None) == errno.ENOSPC or "code: 28" in str(e) or "os error 28" in str(e)
        raise UserError(f"could not write the model: {'no space left on device' if full else e}", where=path,
                        hint="free some space and re-run (the previous model there, if any, is untouched)") from None
