"""Whole-document jobs of the benchmark matrix (tasks.<t>.whole_document): the teacher scoring whole documents as windows,
the teacher ensemble scored alone, and the whole-document students distilled from it, with their exports. A mixin of
`jobs.Matrix` (it uses the matrix's profile, paths and stage builders)."""
from __future__ import annotations

from typing import List

from benchmarks.job_types import Job, Stage
from benchmarks.util import members_text, table_text


class DocumentJobs:
    def _whole_document_jobs(self, t: str) -> List[Job]:
        """The teacher over whole documents (windows), the ensemble (teacher + TF-IDF + LR) scored alone, and the
        whole-document students distilled from that ensemble (they share data and windows: the teachers' outputs
        are scored once, through the first student's data)."""
        wd = self.p.tasks[t].whole_document
        if wd is None:
            return []
        first = self.document_row(t, wd.students[0])
        jobs = [Job(f"{t}/teacher/windows", "teachers", t, [f"{t}/teacher"], "teacher",
                    extra={"member": 0, "stage": first, "out": self.out(t, "teachers", "windows.json")}),
                Job(f"{t}/ensemble", "teachers", t, [f"{t}/teacher", f"{t}/teacher/windows"], "ensemble",
                    extra={"member": None, "stage": first, "out": self.out(t, "teachers", "ensemble.json")})]
        for d in wd.students:
            seed = self.p.seeds[d.student][0]
            start = [f"{t}/{d.student}/{d.start_from}/seed{seed}"] if d.start_from else []
            if d.continue_from:
                start = [self.document_row(t, wd.student(d.continue_from))]
            if d.wide_from:  # the frozen transformer's row, and its export (scores its windows faster)
                start = [self.document_row(t, wd.student(d.wide_from)), f"{t}/export/{d.wide_from}"]
            jobs.append(Job(self.document_row(t, d), "train", t, [f"{t}/teacher", f"{t}/ensemble", *start], d.name,
                            d.variant, seed))
        return jobs

    def document_row(self, t: str, d) -> str:
        """The training row of whole-document student `d` (a profile.DocumentStudent)."""
        return f"{t}/{d.name}/{d.variant}/seed{self.p.seeds[d.student][0]}"

    def _whole_document_deploy_jobs(self, t: str) -> List[Job]:
        wd = self.p.tasks[t].whole_document
        if wd is None:
            return []
        jobs = []
        for d in wd.students:
            row = self.document_row(t, d)
            jobs += [Job(f"{t}/export/{d.name}", "export", t, [row], d.name, extra={"row": row}),
                     Job(f"{t}/int8/{d.name}", "int8", t, [row], d.name, extra={"row": row})]
        return jobs

    def whole_document_stage(self, job: Job) -> Stage:
        """A whole-document student: windows over every document, soft targets from the ensemble of the
        fine-tuned teacher and TF-IDF + LR, all labeled documents and the transfer set."""
        t, wd = job.task, self.p.tasks[job.task].whole_document
        d = wd.student(job.model)
        student = self.student_block(d.student)
        if d.start_from:
            student = dict(student, init="pretrained",
                           path=self.out(t, d.student, d.start_from, f"seed{job.seed}", "best"))
        hp = {**(self.p.students[d.student].own_hyperparameters(t) or self.chosen(t)), **wd.hyperparameters,
              **d.hyperparameters}
        weights = (wd.teacher_weight if d.teacher_weight is None else d.teacher_weight,
                   wd.tfidf_weight if d.tfidf_weight is None else d.tfidf_weight)
        teachers = [e for e, w in zip((self._exported_teacher(t, weights[0]), {"tfidf": True, "weight": weights[1]}),
                                      weights) if w > 0]
        start = f", starting from {t}/{d.student}/{d.start_from}/seed{job.seed}" if d.start_from else ""
        if d.continue_from:
            earlier = self.document_row(t, wd.student(d.continue_from))
            student = dict(student, init="pretrained", path=self.out(*earlier.split("/"), "best"))
            start = f", continuing from {earlier}"
        caps = {"max_train_examples": wd.max_train_examples, "max_unlabeled": wd.max_unlabeled, **d.data}
        labeled = (f"{caps['max_train_examples']} labeled documents" if caps["max_train_examples"] is not None
                   else "every labeled document")
        unlabeled = (f"{caps['max_unlabeled']} unlabeled ones" if caps["max_unlabeled"] is not None
                     else "the unlabeled ones")
        data = {t: {"max_train_examples": caps["max_train_examples"],
                    "max_unlabeled_examples": caps["max_unlabeled"]}}
        windows = {"long_document": {"mode": "windows", **wd.windows}}
        if d.wide_from:
            deep = wd.student(d.wide_from)
            deep_row = self.document_row(t, deep)
            student = dict(self.student_block(deep.student), init="pretrained", path=self.out(*deep_row.split("/"), "best"))
            return self._task_stage(
                job, job.name, self.out(*job.name.split("/")), kd=True, temperature=hp["temperature"],
                ce_weight=hp["ce_weight"], lr=d.train.get("learning_rate", hp["learning_rate"]), transfer=True,
                student=student, epochs=d.train.get("epochs", wd.epochs), distill={"teachers": teachers},
                train={k: v for k, v in d.train.items() if k not in ("epochs", "learning_rate")}, data=data,
                model={**windows, "wide": {"buckets": d.wide_buckets, "fit": d.wide_fit, "level": d.wide_level,
                                           "weighting": d.wide_weighting,
                                           "deep_export": self.out(t, "export", d.wide_from)}},
                stage="wide",
                what=f"wide-and-deep student {d.name}: {deep_row}'s transformer, frozen, plus a linear "
                     f"{table_text(d.wide_level, d.wide_weighting)} ({d.wide_buckets} bigram buckets) fitted {_fit_text(d.wide_fit)}on the soft labels of "
                     f"{_teachers_text(weights)}, {labeled} + {unlabeled} as transfer set, seed {job.seed}")
        return self._task_stage(
            job, job.name, self.out(*job.name.split("/")), kd=True, temperature=hp["temperature"],
            ce_weight=hp["ce_weight"], lr=hp["learning_rate"], transfer=True, student=student, epochs=wd.epochs,
            distill={"teachers": teachers}, train=wd.train, model=windows, data=data,
            what=f"whole-document student {d.name} (student {d.student}'s shape{start}{d.overrides_text()}): windows over every "
                 f"document, task KD from {_teachers_text(weights)}, {labeled} "
                 f"+ {unlabeled} as transfer set, seed {job.seed}")



def _teachers_text(weights) -> str:
    """The members of weights (teacher over windows, TF-IDF + LR; 0 = left out) as the report's rows name them."""
    members = [{"teacher": name, "weight": w} for name, w in zip(("teacher", "tfidf"), weights) if w > 0]
    return members_text(members)


def _fit_text(fit: str) -> str:
    """How the table met the transformer (model.wide.fit), for row and config texts: '' for the default."""
    return "alone (then added at the scale best on dev) " if fit == "separate" else ""
