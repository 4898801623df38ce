"""Bad input through the command line and the data: every error names the file and line (or config key), says
what was expected, and the tools exit 2 with `error: ...` and no traceback (unless --debug).

Reader-level cases (one-column CoNLL lines, IOB1, BOM, CRLF, CSV quoting, missing columns, bad UTF-8, ...) are in
test_readers_*.py and config errors in test_config_*.py; this file and test_robustness_models.py cover the command
line and what only shows up when the pieces are put together (data.load_splits, stages.run_stage, models,
conversion). See docs/troubleshooting.md for the full list.
"""
import json
from pathlib import Path

import pytest
from helpers import cli

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data import load as data
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "tools" / "train.py")


# ---------------------------------------------------------------- command line


def test_cli_missing_imdb_path_says_how_to_get_it_without_traceback(ws):
    args = [TRAIN, "--config", str(ROOT / "configs" / "demo_cls_teacher.yaml"), "data.format=imdb",
            f"model.teacher={ws['teacher']}",
            "data.path=/nonexistent/aclImdb_v1.tar.gz", f"output_dir={ws['root'] / 'imdb'}"]
    result = cli(*args)
    assert result.returncode == 2
    err = result.stderr
    assert "error: IMDB data not found: /nonexistent/aclImdb_v1.tar.gz" in err
    assert "hint: expected aclImdb_v1.tar.gz, or its extracted folder: aclImdb/{train,test}/{pos,neg}/" in err
    assert "download aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/" in err
    assert "load_dataset('imdb')" in err  # the online alternative
    assert "Traceback" not in err

    debug = cli(*args, "--debug")
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "error: IMDB data not found" in debug.stderr


def test_cli_bad_conll_tag_names_file_and_line(ws, tmp_path):
    (tmp_path / "train.txt").write_text("-DOCSTART- O\n\nJohn B-PER\nParis X-LOC\n", encoding="utf-8")
    result = cli(TRAIN, "--config", str(ROOT / "configs" / "demo_ner_teacher.yaml"), "data.format=conll",
                 f"data.path={tmp_path}", f"model.teacher={ws['teacher']}", f"output_dir={tmp_path / 'run'}")
    assert result.returncode == 2
    train = tmp_path / "train.txt"
    assert (f"error: {train}:4: bad tag 'X-LOC' in the last column of line 'Paris X-LOC': "
            "expected 'O' or 'B-TYPE' / 'I-TYPE' (IOB1 or IOB2)") in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_stage_that_needs_a_teacher_without_one(tmp_path):
    result = cli(TRAIN, "--config", str(ROOT / "configs" / "demo_cls_task.yaml"), "model.teacher=null",
                 f"output_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.startswith("error: stage 'task' needs 'model.teacher' (the teacher to distill from); "
                                    "it is not set\n  hint: e.g. model.teacher=minilm")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- data paths and labels


def write_conll(path, sentences):
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8")


@pytest.fixture
def conll_dir(tmp_path):
    write_conll(tmp_path / "train.txt", [[("John", "B-PER"), ("Smith", "I-PER"), ("ran", "O")], [("ok", "O")]])
    write_conll(tmp_path / "dev.txt", [[("Paris", "B-MISC"), ("Hilton", "I-MISC")], [("Ann", "B-PER")]])
    write_conll(tmp_path / "test.txt", [[("Bob", "B-PER"), ("sat", "O")]])
    return tmp_path


def ner_data_config(path, **data_keys):
    return config_from_dict({"task": "ner", "stage": "teacher", "output_dir": "unused", "model": {"teacher": "t"},
                             "data": {"format": "conll", "path": str(path), **data_keys}}).data


def test_conll_dev_label_unseen_in_training_is_an_error_naming_the_file_and_option(conll_dir):
    with pytest.raises(UserError) as err:
        data.load_splits(ner_data_config(conll_dir), "ner")
    assert str(err.value) == (
        f"dev split {conll_dir / 'dev.txt'}: labels not in the training label set: 'B-MISC', 'I-MISC'; "
        "known labels: 'O', 'B-PER', 'I-PER'\n"
        "  hint: policy 'map_to_o' (config key data.unknown_eval_labels) replaces unknown tags with 'O'")


def test_conll_dev_label_unseen_in_training_maps_to_o_when_configured(conll_dir):
    splits = data.load_splits(ner_data_config(conll_dir, unknown_eval_labels="map_to_o"), "ner")
    assert splits.labels == ["O", "B-PER", "I-PER"]
    assert [s.tags for s in splits.dev] == [["O", "O"], ["B-PER"]]
    assert [s.tags for s in splits.test] == [["B-PER", "O"]]


def test_classification_test_label_absent_from_train_names_the_file(tmp_path):
    rows = {"train": ["pos", "neg", "pos", "neg"], "dev": ["pos", "neg"], "test": ["pos", "meh"]}
    for split, labels in rows.items():
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for i, label in enumerate(labels):
                f.write(json.dumps({"text": f"text {i}", "label": label}) + "\n")
    cfg = config_from_dict({"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": "t"},
                            "data": {"format": "jsonl", **{f"{s}_file": str(tmp_path / f"{s}.jsonl") for s in rows}}})
    with pytest.raises(UserError, match=r"^test split .*test\.jsonl: labels not in the training label set: 'meh'; "
                                        r"known labels: 'neg', 'pos'$"):
        data.load_splits(cfg.data, "classification")


def test_missing_data_paths_say_what_is_expected_and_how_to_get_it(tmp_path):
    with pytest.raises(UserError) as err:
        data.load_splits(ner_data_config(tmp_path / "conll2003"), "ner")
    message = str(err.value)
    assert message.startswith(f"data.path {str(tmp_path / 'conll2003')!r} does not exist\n  hint: expected a folder "
                              "with train.txt, dev.txt (or valid.txt) and test.txt in CoNLL column format")
    assert "load_dataset('conll2003')" in message

    imdb = config_from_dict({"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": "t"},
                             "data": {"format": "imdb", "path": str(tmp_path / "aclImdb_v1.tar.gz")}}).data
    with pytest.raises(UserError, match=r"^IMDB data not found: .*aclImdb_v1\.tar\.gz\n  hint: expected "):
        data.load_splits(imdb, "classification")

    csv = config_from_dict({"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": "t"},
                            "data": {"format": "csv", "train_file": str(tmp_path / "train.csv")}}).data
    with pytest.raises(UserError, match=r"^CSV file not found: .*train\.csv"):
        data.load_splits(csv, "classification")


def test_whitespace_only_documents(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"   \t ",pos\nfine,neg\nok,pos\nbad,neg\ngood,pos\n',
                                        encoding="utf-8")
    raw = {"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": "t"},
           "data": {"format": "csv", "train_file": str(tmp_path / "train.csv"), "dev_size": 2}}
    with pytest.raises(UserError) as err:
        data.load_splits(config_from_dict(raw).data, "classification")
    assert str(err.value) == (f"{tmp_path / 'train.csv'}:2: empty text in column 'text'\n"
                              "  hint: remove the record or pass skip_empty=True")
    raw["data"]["skip_empty"] = True
    splits = data.load_splits(config_from_dict(raw).data, "classification")
    assert sorted(e.text for e in splits.train + splits.dev) == ["bad", "fine", "good", "ok"]

    (tmp_path / "blank").mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (tmp_path / "blank" / name).write_text(" \n\t\n   \n", encoding="utf-8")
    with pytest.raises(UserError, match=r"train\.txt: no sentences: the file is empty"):
        data.load_splits(ner_data_config(tmp_path / "blank"), "ner")


def test_one_megabyte_text_is_read_and_truncated(ws, tmp_path):
    words = "the plot was thin but the acting , music and pacing were great".split()
    huge = " ".join(words[i % len(words)] for i in range(250_000))[:1_000_000]
    with open(tmp_path / "train.jsonl", "w", encoding="utf-8") as f:
        for i, (text, label) in enumerate([(huge, "pos"), ("bad", "neg"), ("good", "pos"), ("awful", "neg")]):
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    raw = {"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": ws["teacher"]},
           "data": {"format": "jsonl", "train_file": str(tmp_path / "train.jsonl"), "dev_size": 1, "split_seed": 1}}
    cfg = config_from_dict(raw)
    splits = data.load_splits(cfg.data, "classification")
    examples = splits.train + splits.dev
    assert max(len(e.text) for e in examples) == 1_000_000
    from ernie_tiny_distill.tasks.adapters import make_task

    task = make_task("classification", models.load_tokenizer(ws["teacher"]), splits.labels, 32, "head_tail")
    features = task.encode(examples)
    lengths = [len(f["input_ids"]) for e, f in zip(examples, features) if len(e.text) == 1_000_000]
    assert lengths == [32]


# --------------------------------------------------------------------------- data cases


def test_train_txt_that_is_a_directory_is_named(tmp_path):
    (tmp_path / "train.txt").mkdir()
    (tmp_path / "dev.txt").write_text("John B-PER\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"^.*/train\.txt: is a directory, expected a CoNLL file\n  hint: expected a "):
        data.load_splits(ner_data_config(tmp_path), "ner")


def test_empty_training_subset_is_blamed_on_training_not_dev(tmp_path):
    import dataclasses

    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,neg\n", encoding="utf-8")
    (tmp_path / "dev.csv").write_text("text,label\nc,pos\n", encoding="utf-8")
    cfg = config_from_dict({"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": "t"},
                            "data": {"format": "csv", "train_file": str(tmp_path / "train.csv"),
                                     "dev_file": str(tmp_path / "dev.csv")}}).data
    # the config refuses max_train_examples=0 (test_config.py); a DataConfig built in Python is checked here too
    with pytest.raises(UserError, match=r"^no training examples in .*train\.csv\n  hint: check the training file"):
        data.load_splits(dataclasses.replace(cfg, max_train_examples=0), "classification")


def test_headerless_csv_with_label_names_file_through_the_config(tmp_path):
    (tmp_path / "train.csv").write_text('"1","Oil up","Prices rose"\n"2","Cup final","A late goal"\n'
                                        '"1","Talks stall",""\n"2","Record run","Fastest lap"\n', encoding="utf-8")
    (tmp_path / "classes.txt").write_text("World\nSports\n", encoding="utf-8")
    cfg = config_from_dict({"task": "classification", "stage": "teacher", "output_dir": "x", "model": {"teacher": "t"},
                            "data": {"format": "csv", "train_file": str(tmp_path / "train.csv"), "dev_size": 2,
                                     "header": False, "text_column": [1, 2], "label_column": 0,
                                     "label_names": str(tmp_path / "classes.txt"), "first_label_id": 1}}).data
    splits = data.load_splits(cfg, "classification")
    assert splits.labels == ["Sports", "World"]
    assert sorted((e.text, e.label) for e in splits.train + splits.dev) == [
        ("Cup final A late goal", "Sports"), ("Oil up Prices rose", "World"), ("Record run Fastest lap", "Sports"),
        ("Talks stall", "World")]
