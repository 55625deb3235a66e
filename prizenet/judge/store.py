"""The judging service's database, in SQLAlchemy Core (1.4 and 2.x alike).

``sqlite:///contest.db`` (a file, the default; WAL journal so readers never wait for the
writer) or ``postgresql+psycopg2://user@host/db`` (``pip install psycopg2-binary``). One
contest per database. What is kept:

- ``contest``: one row: the rules, the answer key's SHA-256 (the server refuses another
  key), the reference RMSE, the dates, the limits, and the secret that signs proof-of-work
  challenges.
- ``teams`` (each team's API token stored as its SHA-256, never the token) and ``members``.
- ``submissions``: every scored submission with its SHA-256, size, time and both scores.
  ``(team_id, day, slot)`` is unique, slot counting the team's scored submissions of that
  UTC day from 1, so two requests racing for a team's last slot of the day cannot both
  be stored, whichever database is underneath.
- ``events``: recent sign-ups and submission attempts, for the rate limits; ``challenges``:
  the proof-of-work challenges already spent.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

metadata = sa.MetaData()

contest = sa.Table(
    "contest", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("rules", sa.Text, nullable=False),
    sa.Column("key_sha256", sa.String(64), nullable=False),
    sa.Column("n_predictions", sa.Integer, nullable=False),
    sa.Column("n_quiz", sa.Integer, nullable=False),
    sa.Column("reference_rmse", sa.Float),
    sa.Column("target_pct", sa.Float, nullable=False),  # the "grand prize" line: this % better than the reference
    sa.Column("opens_at", sa.DateTime),
    sa.Column("closes_at", sa.DateTime),
    sa.Column("closed_at", sa.DateTime),
    sa.Column("daily_limit", sa.Integer, nullable=False),
    sa.Column("max_upload_bytes", sa.Integer, nullable=False),
    sa.Column("pow_bits", sa.Integer, nullable=False),
    sa.Column("signups_per_hour", sa.Integer, nullable=False),
    sa.Column("attempts_per_hour", sa.Integer, nullable=False),
    sa.Column("secret", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("name_key", sa.String(80), nullable=False, unique=True),  # casefolded: "Gravity" = "gravity"
    sa.Column("contact", sa.String(200), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("rules_accepted_at", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

members = sa.Table(
    "members", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("contact", sa.String(200)),
    sa.Column("added_at", sa.DateTime, nullable=False),
)

submissions = sa.Table(
    "submissions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False, index=True),
    sa.Column("day", sa.String(10), nullable=False),  # UTC date, YYYY-MM-DD
    sa.Column("slot", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("clipped", sa.Integer, nullable=False),
    sa.Column("quiz_rmse", sa.Float, nullable=False),
    sa.Column("test_rmse", sa.Float, nullable=False),
    sa.Column("note", sa.String(200)),
    sa.UniqueConstraint("team_id", "day", "slot", name="one_per_slot"),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(80), nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # seconds since the epoch
    sa.Index("events_lookup", "kind", "key", "at"),
)

challenges = sa.Table(
    "challenges", metadata,
    sa.Column("challenge", sa.String(120), primary_key=True),
    sa.Column("spent_at", sa.Float, nullable=False),
)


def engine(url: str) -> sa.engine.Engine:
    """An engine on ``url`` with the tables made if missing. SQLite gets WAL, a 30 s busy
    timeout and foreign keys on, and its transactions are begun by SQLAlchemy, not by the
    driver (SQLAlchemy's recipe for working savepoints), a writing one with ``BEGIN
    IMMEDIATE`` (:func:`write`) so it waits for the lock instead of failing on a stale read."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            from pathlib import Path
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = sa.create_engine(url, future=True, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(eng, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # the driver begins nothing itself
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(eng, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")
    else:
        eng = sa.create_engine(url, future=True, pool_pre_ping=True)
    metadata.create_all(eng)
    return eng


@contextmanager
def write(eng: sa.engine.Engine):
    """A writing transaction: ``with write(engine) as conn:``, committed at the end."""
    with eng.connect() as conn:
        conn.execution_options(write=True)
        with conn.begin():
            yield conn
