"""Pure functions of run folders on disk: records, tables, plots, the dashboard.

Every fact comes from the records the runs wrote (``eval.jsonl``, ``logs/*/metrics.csv``,
``bsa_stage.json``), never from folder names; nothing here imports ``bsa.experiment``.
"""
