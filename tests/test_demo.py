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
