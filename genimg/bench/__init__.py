"""The benchmark: ``python -m genimg bench`` (CPU sweep, ``run.py``) and ``python -m genimg.bench.gpu`` (SD-family
architectures on a GPU). ``config`` says what runs, ``runners`` runs it, ``report`` writes it up."""
