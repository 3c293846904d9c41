"""scripts/demo.py, run as a user would run it (`make demo`), against a throwaway SQLite database."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_answers_its_questions_stores_them_and_prints_where_to_look(tmp_path):
    database = tmp_path / "demo.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "TRIO_ADMIN_PASSWORD": "demo-password"}
    env.pop("TRIO_PORT", None)  # a free port, whatever the developer's shell says

    result = subprocess.run([sys.executable, "scripts/demo.py", "--once", "--questions", "6"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Asked 6 questions" in result.stdout
    assert "/votes/" in result.stdout and "/leaderboard/" in result.stdout and "/admin/" in result.stdout
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT status, winner_model FROM ensemble_completionrequest").fetchall()
        members = db.execute("SELECT DISTINCT model FROM ensemble_candidate ORDER BY model").fetchall()
    assert len(stored) == 6
    assert all(status in ("ok", "partial") for status, _ in stored)
    assert members == [("rookie",), ("sage",), ("scholar",)]


def test_the_demo_leaderboard_rates_its_models_in_quality_order_though_the_poor_one_prefers_itself(tmp_path):
    """rookie (quality .35) always prefers its own answer: the ratings must not reward it (issue 23)."""
    database = tmp_path / "demo.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "TRIO_ADMIN_PASSWORD": "demo-password"}
    env.pop("TRIO_PORT", None)
    subprocess.run([sys.executable, "scripts/demo.py", "--once", "--questions", "12"],
                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)

    rated = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from ensemble.leaderboard.board import leaderboard; "
         "print(' '.join(r.model for r in sorted(leaderboard(window='all').ratings, key=lambda r: -r.rating)))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)

    assert rated.stdout.split()[-3:] == ["sage", "scholar", "rookie"]
