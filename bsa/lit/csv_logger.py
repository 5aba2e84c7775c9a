"""A CSV logger that keeps a resumed stage's earlier rows.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its folder is not empty ("Previous log files
in this directory will be deleted"): a stage resumed after a kill or across device calls lost the
training curve of every step before the resume (the dashboard's loss curve began at the resume).
Here the earlier rows stay, except those of steps the resumed run logs again (those after its
checkpoint): they are dropped when the first new rows are saved, so each step has one row."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from bsa.durable import replace_durably, temporary_path


class ResumedExperimentWriter(ExperimentWriter):
    """Appends to an existing ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        self._earlier: list[dict] | None = None
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                reader = csv.DictReader(f)
                self._earlier = list(reader)
                self.metrics_keys = list(reader.fieldnames or [])

    def save(self) -> None:
        if self._earlier is not None and self.metrics:
            first = min(int(m["step"]) for m in self.metrics)
            kept = [row for row in self._earlier if int(row["step"]) < first]
            tmp = temporary_path(self.metrics_file_path)
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
            replace_durably(tmp, self.metrics_file_path)
            self._earlier = None
        super().save()


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume (:class:`ResumedExperimentWriter`)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumedExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumedExperimentWriter(log_dir=self.log_dir)
        return self._experiment
