"""Turn the `data` config section into train/dev/test/unlabeled example lists (readers do the parsing)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ernie_tiny_distill.config import DataConfig
from ernie_tiny_distill.data import readers
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks import adapters as tasks

logger = logging.getLogger(__name__)


@dataclass
class DataSplits:
    train: list
    dev: list
    test: list
    unlabeled: list = field(default_factory=list)
    labels: List[str] = field(default_factory=list)


def _first_existing(folder: str, names) -> Optional[str]:
    # exists, not isfile: a train.txt that is a directory is handed to the reader, which says so
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


def _limit(examples: list, n: Optional[int]) -> list:
    return examples if n is None else examples[:n]


def _demo_dir(cfg: DataConfig) -> str:
    return cfg.path or os.path.join(cfg.cache_dir or ".cache", "demo_data")


def _tagging_files(cfg: DataConfig):
    train, dev, test = cfg.train_file, cfg.dev_file, cfg.test_file
    if cfg.path:
        if not os.path.isdir(cfg.path):
            raise UserError(
                f"data.path {cfg.path!r} is not a directory" if os.path.exists(cfg.path)
                else f"data.path {cfg.path!r} does not exist",
                hint="expected a folder with train.txt, dev.txt (or valid.txt) and test.txt in CoNLL column format "
                     "(token first, tag last, blank line between sentences); CoNLL-2003 can be fetched when online "
                     "with paddlenlp.datasets.load_dataset('conll2003') and saved in that layout",
            )
        train = train or _first_existing(cfg.path, ["train.txt", "train.tsv"])
        dev = dev or _first_existing(cfg.path, ["dev.txt", "valid.txt", "dev.tsv", "validation.txt"])
        test = test or _first_existing(cfg.path, ["test.txt", "test.tsv"])
    if not train:
        raise UserError(
            "no training file: set data.train_file or data.path (a folder with train.txt)",
            hint="CoNLL-2003 is available from its maintainers; offline, point data.path at a local copy",
        )
    return train, dev, test


def _read_tagged(cfg: DataConfig, path: str) -> List[TaggedSentence]:
    if cfg.format == "msra":
        return readers.read_msra(path, encoding_errors=cfg.encoding_errors, encoding=cfg.encoding)
    return readers.read_conll(path, iob_repair=cfg.iob_repair, encoding_errors=cfg.encoding_errors,
                              encoding=cfg.encoding)


def _read_labeled(cfg: DataConfig, task: str):
    """(train, dev or None, test or None) for the configured format."""
    task_cls = tasks.task_class(task)
    if cfg.format not in task_cls.data_formats:
        owner = next((name for name, c in tasks.TASKS.items() if cfg.format in c.data_formats), "another")
        raise UserError(f"data.format {cfg.format!r} holds {owner} data but task is {task!r}",
                        hint=f"formats for task {task!r}: {', '.join(task_cls.data_formats)}")
    if cfg.format == "demo":
        from ernie_tiny_distill.data.demo import write_demo_data

        paths = write_demo_data(_demo_dir(cfg))
        read, prefix = task_cls.read_labeled_file, task_cls.demo_prefix
        return read(paths[f"{prefix}_train"]), read(paths[f"{prefix}_dev"]), read(paths[f"{prefix}_test"])
    if cfg.format == "imdb":
        train = readers.read_imdb(cfg.path, "train", cache_dir=cfg.cache_dir)
        test = readers.read_imdb(cfg.path, "test", cache_dir=cfg.cache_dir)
        return train, None, test
    if cfg.format in ("conll", "msra"):
        train, dev, test = _tagging_files(cfg)
        return _read_tagged(cfg, train), dev and _read_tagged(cfg, dev), test and _read_tagged(cfg, test)
    # csv / tsv / jsonl / label_text classification files
    if not cfg.train_file:
        raise UserError(f"data.format {cfg.format!r} needs data.train_file (and optionally dev_file, test_file)",
                        where="config key 'data.train_file'")
    label_names = readers.read_label_names(cfg.label_names, cfg.first_label_id)

    def read(path, text_column):
        if cfg.format == "label_text":
            examples = readers.read_label_text(path, encoding=cfg.encoding, encoding_errors=cfg.encoding_errors,
                                               skip_empty=cfg.skip_empty, label_names=label_names)
        else:
            examples = readers.read_classification_file(
                path, text_column=text_column, label_column=cfg.label_column, file_format=cfg.format,
                encoding_errors=cfg.encoding_errors, skip_empty=cfg.skip_empty, header=cfg.header,
                label_names=label_names, encoding=cfg.encoding,
            )
        return _coarse_labels(examples, cfg.label_separator)

    dev_column = cfg.text_column if cfg.dev_text_column is None else cfg.dev_text_column
    test_column = cfg.text_column if cfg.test_text_column is None else cfg.test_text_column
    return (read(cfg.train_file, cfg.text_column), cfg.dev_file and read(cfg.dev_file, dev_column),
            cfg.test_file and read(cfg.test_file, test_column))


def _coarse_labels(examples: list, separator: Optional[str]) -> list:
    """data.label_separator: each label cut at the separator's first occurrence (TREC `NUM:dist` -> `NUM`)."""
    if not separator:
        return examples
    return [TextExample(ex.text, ex.label.split(separator, 1)[0]) for ex in examples]


AUGMENT = "augment"


def augment_count(cfg: DataConfig, train_size: int) -> int:
    """How many augmented copies data.unlabeled=augment makes of a training set of `train_size` examples."""
    if cfg.augment_copies is None:
        return cfg.max_unlabeled_examples or train_size
    count = max(1, round(cfg.augment_copies * train_size))
    return min(count, cfg.max_unlabeled_examples) if cfg.max_unlabeled_examples else count


def augmented_copies(cfg: DataConfig, task: str, train: list) -> list:
    """data.unlabeled=augment: unlabeled augmented copies of the training examples as the transfer set,
    data.augment_copies per training example (capped by data.max_unlabeled_examples), else
    data.max_unlabeled_examples of them (default: as many as there are training examples)."""
    embeddings = None
    if cfg.augment_embeddings:
        from ernie_tiny_distill.data.augment_text import model_word_table
        from ernie_tiny_distill.models.locate import resolve

        embeddings = model_word_table(resolve(cfg.augment_embeddings))
    count = augment_count(cfg, len(train))
    docs, how = tasks.task_class(task).augmented_transfer_set(train, count, seed=cfg.split_seed, embeddings=embeddings)
    logger.info("transfer set: %d augmented copies of the %d training examples (%s; seed %d)",
                len(docs), len(train), how, cfg.split_seed)
    return docs


def _unlabeled_file(cfg: DataConfig, path: str) -> Tuple[list, str]:
    """A text file (one document per line) or a CSV/TSV/JSONL file's text column, cut to data.unlabeled_rows."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".csv", ".tsv", ".jsonl", ".json"):
        column = cfg.text_column if cfg.unlabeled_column is None else cfg.unlabeled_column
        docs = readers.read_classification_file(
            path, text_column=column, label_column=None, encoding_errors=cfg.encoding_errors,
            skip_empty=cfg.skip_empty, header=cfg.header, encoding=cfg.encoding)
        what = f"column {column!r} of {path}"
    else:
        if cfg.unlabeled_column is not None:
            raise UserError(f"config key 'data.unlabeled_column' is set but {path} is a plain text file (one "
                            "document per line, no columns)",
                            hint="set data.unlabeled_column to null, or give a .csv/.tsv/.jsonl file")
        docs = readers.read_plain_text(path, encoding_errors=cfg.encoding_errors, encoding=cfg.encoding)
        what = path
    if cfg.unlabeled_rows is not None:
        first, end = cfg.unlabeled_rows
        if first >= len(docs):
            raise UserError(f"config key 'data.unlabeled_rows' starts at row {first} but {what} has {len(docs)} "
                            "rows (0-based, header not counted)")
        docs = docs[first:end]
        what += f" rows {first} to {first + len(docs) - 1}"
    return docs, what


def read_unlabeled(cfg: DataConfig, task: str) -> list:
    """The unlabeled corpus (stage 1) / transfer set (stage 2): TextExample or TaggedSentence without labels."""
    spec = cfg.unlabeled
    if not spec:
        return []
    if spec == AUGMENT:
        raise UserError("config key 'data.unlabeled' = 'augment' builds a transfer set from the training data; "
                        "it is for stage 'task' (stage 'general' needs real unlabeled text)")
    if spec == "imdb_unsup":
        docs = readers.read_imdb(cfg.path, "unsup", limit=cfg.max_unlabeled_examples, cache_dir=cfg.cache_dir)
        what = f"IMDB train/unsup reviews ({cfg.path or 'PaddleNLP download'})"
    elif spec == "demo":
        from ernie_tiny_distill.data.demo import write_demo_data

        paths = write_demo_data(_demo_dir(cfg))
        what = paths[f"{tasks.task_class(task).demo_prefix}_unlabeled"]
        docs = readers.read_plain_text(what)
        what = f"demo text {what}"
    elif os.path.isfile(spec):
        docs, what = _unlabeled_file(cfg, spec)
    else:
        raise UserError(
            f"config key 'data.unlabeled' = {spec!r} is neither 'imdb_unsup', 'demo', 'augment' nor an existing "
            "file (text with one document per line, or .csv/.tsv/.jsonl with data.unlabeled_column)"
        )
    total = len(docs)
    docs = _limit(docs, cfg.max_unlabeled_examples)
    logger.info("unlabeled text: %d document(s) from %s%s", len(docs), what,
                f" (the first {len(docs)} of {total}: data.max_unlabeled_examples)" if len(docs) < total else "")
    return [tasks.task_class(task).unlabeled_example(d.text) for d in docs]


def load_splits(cfg: DataConfig, task: str, need_unlabeled: bool = False) -> DataSplits:
    train, dev, test = _read_labeled(cfg, task)
    if dev is None:
        total = len(train)
        train, dev = readers.split_train_dev(train, cfg.dev_size if cfg.dev_size < 1 else int(cfg.dev_size),
                                             seed=cfg.split_seed)
        how = "stratified by label" if readers.is_stratified(dev) else "at random"
        logger.info("no dev file: %d of the %d training examples%s held out as dev (%s, data.dev_size %s, "
                    "seed %d)", len(dev), total, _train_source(cfg), how, cfg.dev_size, cfg.split_seed)
    # random subsets are seeded: files sorted by label (IMDB) would give one-class subsets when cut at the top
    subset = _first if cfg.subset == "first" else _random_subset
    train = subset(train, cfg.max_train_examples, cfg.split_seed)
    dev = subset(dev, cfg.max_dev_examples, cfg.split_seed)
    test = subset(test or [], cfg.max_test_examples, cfg.split_seed)
    if not train:
        raise UserError(f"no training examples{_train_source(cfg)}", hint="check the training file and "
                        "data.max_train_examples / data.dev_size")
    labels = readers.label_set(train)
    _check_classes(labels, cfg)
    dev_where, test_where = _eval_sources(cfg)
    dev = readers.check_labels_known(dev, labels, where=dev_where, policy=cfg.unknown_eval_labels)
    test = readers.check_labels_known(test, labels, where=test_where, policy=cfg.unknown_eval_labels)
    if need_unlabeled and cfg.unlabeled == AUGMENT:
        unlabeled = augmented_copies(cfg, task, train)
    else:
        unlabeled = read_unlabeled(cfg, task) if need_unlabeled else []
    return DataSplits(train=train, dev=dev, test=test, unlabeled=unlabeled, labels=labels)


def _check_classes(labels: List[str], cfg: DataConfig) -> None:
    """A training set with one class trains a model that always answers it: refuse it."""
    if len(labels) >= 2:
        return
    raise UserError(f"the training examples{_train_source(cfg)} have one label only ({', '.join(labels)}): a model "
                    "needs at least 2 classes (tags other than 'O' for NER) to learn anything",
                    hint="check data.label_column / data.label_separator, and data.max_train_examples with "
                         "data.subset=first on a file sorted by label")


def _train_source(cfg: DataConfig) -> str:
    """' in FILE' for messages about the training split, when it comes from one file."""
    if cfg.format in ("conll", "msra"):
        return f" in {_tagging_files(cfg)[0]}"
    if cfg.format in ("csv", "tsv", "jsonl", "label_text"):
        return f" in {cfg.train_file}"
    if cfg.format == "imdb":
        return f" in {cfg.path or 'IMDB (PaddleNLP download)'}"
    return ""


def _eval_sources(cfg: DataConfig):
    """How error messages name the dev and test splits: the file they came from when there is one."""
    dev = test = None
    if cfg.format in ("conll", "msra"):
        _, dev, test = _tagging_files(cfg)
    elif cfg.format in ("csv", "tsv", "jsonl", "label_text"):
        dev, test = cfg.dev_file, cfg.test_file
    elif cfg.format == "imdb" and cfg.path:
        test = f"{cfg.path} (test)"
    return (f"dev split {dev}" if dev else "dev split", f"test split {test}" if test else "test split")


def _first(examples: list, n: Optional[int], seed: int) -> list:
    """The first n examples in file order (data.subset=first)."""
    return _limit(examples, n)


def _random_subset(examples: list, n: Optional[int], seed: int) -> list:
    """The first n examples after a seeded shuffle (a fixed-size random subset, the same for every run)."""
    if n is None or n >= len(examples):
        return examples
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]
