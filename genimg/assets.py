"""Where the shipped models live: ``assets/models`` beside the package (training writes there, inference reads)."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
