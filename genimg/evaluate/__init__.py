"""Quality: ``python -m genimg evaluate`` (prompt-match per configuration, ``prompt_match.py``) and the judge that
scores images against prompts (``judge.py``, also used by the app and the benchmark)."""
