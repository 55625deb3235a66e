"""The contest's rules in code, apart from HTTP: sign-up with proof of work, tokens, rate
limits, the daily limit, reading and scoring an upload, the leaderboard, the close.

The Prize's own rules, as read from its site and FAQ, and where this differs:

- The leaderboard ranks teams by their best quiz RMSE and shows the improvement over the
  reference (Cinematch's 0.9514 on Netflix data). Equal scores are ranked by which came
  first, as the Prize broke the final tie of 2009 (the same test RMSE, 20 minutes apart).
- The test RMSE of every submission is computed and stored, and shown nowhere until the
  organiser closes the contest. Then the final ranking orders each team's *entry* by its
  test RMSE. The entry is the team's best submission on the quiz half (the earliest of
  equals), so the test half is never used to choose it; ties again go to the earlier one.
- One scored submission per team per UTC day (``daily_limit``): the FAQ's "to dissuade
  you from just training on the scoring oracle's responses". A rejected upload (wrong
  format, wrong count, wrong order) is not scored and does not use the day's slot.
- A submission may be gzipped (the Prize gunzipped what it could); it is capped at
  ``max_upload_bytes`` both as sent and unpacked.
- Sign-ups need a proof of work (a hashcash stamp of ``pow_bits`` leading zero bits over
  a signed, expiring, single-use challenge: about 2**pow_bits SHA-256s, a second or two of
  CPU at the default 20) and are limited per address; submission attempts, scored or
  not, are limited per team and per address.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import secrets
import time
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from prizenet.data.fastio import DataFormatError, parse_predictions, to_array
from prizenet.data.submission import Key, atomic_write, judge, read_answers

from . import store
from .client import pow_ok

TOKEN_PREFIX = "pz_"
CHALLENGE_TTL_S = 600
DEFAULT_RULES = """\
1. One team per person or group; a team's members are listed at sign-up.
2. Predict every pair of the qualifying set, in its order, in the Prize's format (a
   'MovieID:' line, then one prediction per line); the file may be gzipped.
3. Each submission is scored on the quiz half of the qualifying set; that RMSE is shown
   on the leaderboard. The test half's RMSE is kept secret until the contest closes and
   decides the final ranking. Equal scores rank by submission time.
4. One scored submission per team per day (UTC). Rejected files do not count.
5. Automated sign-ups and attempts to learn the test half are not allowed.
"""


class Rejected(Exception):
    """A request the rules refuse: an HTTP status, a message for the team, and when to
    try again (seconds) for the limits."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # stored naive, in UTC


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="milliseconds") + "Z"


def token_hash(token: str) -> str:
    """Tokens are 256 random bits, so one SHA-256 is enough to store them (no password
    stretching: nothing to guess)."""
    return hashlib.sha256(token.encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_key(path: str | Path) -> tuple[Key, str]:
    """The answer key, checked by the project's reader, and its file's SHA-256."""
    return Key.of(read_answers(path)), file_sha256(path)


def create(engine: sa.engine.Engine, key_path: str | Path, name: str = "prizenet contest", *,
           rules: str = DEFAULT_RULES, reference_rmse: float | None = None, target_pct: float = 10.0,
           opens_at: datetime | None = None, closes_at: datetime | None = None, daily_limit: int = 1,
           max_upload_bytes: int = 64 << 20, pow_bits: int = 20, signups_per_hour: int = 5,
           attempts_per_hour: int = 20) -> dict:
    """Create the database's contest (the organiser's first step; ``serve`` does it with
    the defaults when the database has none). Refuses a second one."""
    key, sha = load_key(key_path)
    if daily_limit < 1 or max_upload_bytes < 1 or not 0 <= pow_bits <= 32:
        raise ValueError("daily_limit and max_upload_bytes must be positive, pow_bits 0-32")
    if opens_at and closes_at and closes_at <= opens_at:
        raise ValueError(f"the contest closes ({closes_at}) before it opens ({opens_at})")
    with store.write(engine) as conn:
        if conn.execute(sa.select(store.contest.c.id)).first() is not None:
            raise ValueError("this database already holds a contest; use a new database for another")
        conn.execute(store.contest.insert().values(
            id=1, name=name, rules=rules, key_sha256=sha, n_predictions=len(key.movie),
            n_quiz=int(key.quiz.sum()), reference_rmse=reference_rmse, target_pct=target_pct,
            opens_at=opens_at, closes_at=closes_at,
            daily_limit=daily_limit, max_upload_bytes=max_upload_bytes, pow_bits=pow_bits,
            signups_per_hour=signups_per_hour, attempts_per_hour=attempts_per_hour,
            secret=secrets.token_hex(32), created_at=utcnow()))
    return {"name": name, "key_sha256": sha, "n_predictions": len(key.movie)}


def close(engine: sa.engine.Engine) -> datetime:
    """Close the contest: no more submissions; the final ranking by test RMSE is published."""
    now = utcnow()
    with store.write(engine) as conn:
        row = conn.execute(sa.select(store.contest.c.closed_at)).first()
        if row is None:
            raise ValueError("this database holds no contest")
        if row.closed_at is not None:
            return row.closed_at
        conn.execute(store.contest.update().values(closed_at=now))
    return now


@dataclass
class Team:
    id: int
    name: str


class Judge:
    """The running contest: the database and the answer key in memory. Every method reads
    the contest row afresh, so an organiser's ``close`` takes effect at once."""

    def __init__(self, engine: sa.engine.Engine, key: Key, key_sha256: str):
        self.engine, self.key = engine, key
        row = self.contest()
        if row.key_sha256 != key_sha256:
            raise ValueError(f"the answer key's SHA-256 {key_sha256[:12]}… is not the contest's "
                             f"({row.key_sha256[:12]}…): this database was made with another key")
        if row.n_predictions != len(key.movie):
            raise ValueError("the answer key's size differs from the contest's")
        self._board: tuple | None = None

    def contest(self, conn=None):
        if conn is None:
            with self.engine.connect() as conn:
                return self.contest(conn)
        row = conn.execute(sa.select(store.contest)).first()
        if row is None:
            raise ValueError("the database holds no contest: `prizenet judge create` makes one")
        return row

    def public(self) -> dict:
        """What anyone may know of the contest (no secret, no test score)."""
        c = self.contest()
        now = utcnow()
        return {"name": c.name, "reference_rmse": c.reference_rmse, "target_pct": c.target_pct,
                "n_predictions": c.n_predictions, "n_quiz": c.n_quiz,
                "opens_at": iso(c.opens_at), "closes_at": iso(c.closes_at),
                "closed": c.closed_at is not None, "closed_at": iso(c.closed_at), "open": self._open(c, now) is None,
                "daily_limit": c.daily_limit, "max_upload_bytes": c.max_upload_bytes, "pow_bits": c.pow_bits,
                "rules": c.rules}

    @staticmethod
    def _open(c, now: datetime) -> str | None:
        """Why the contest takes no submission now, or None."""
        if c.closed_at is not None:
            return f"the contest closed at {iso(c.closed_at)}"
        if c.opens_at is not None and now < c.opens_at:
            return f"the contest opens at {iso(c.opens_at)}"
        if c.closes_at is not None and now >= c.closes_at:
            return f"the contest stopped taking submissions at {iso(c.closes_at)}"
        return None

    # --- rate limits ------------------------------------------------------------------
    @staticmethod
    def _limit(conn, kind: str, key: str, per_hour: int, what: str) -> None:
        """At most ``per_hour`` events of ``kind`` for ``key`` in the last hour, this one counted."""
        if per_hour <= 0:
            return
        now = time.time()
        n, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(store.events.c.at)).where(
            store.events.c.kind == kind, store.events.c.key == key, store.events.c.at > now - 3600)).one()
        if n >= per_hour:
            wait = int(oldest + 3600 - now) + 1
            raise Rejected(429, f"too many {what} ({per_hour} an hour); try again in {wait} s", wait)
        conn.execute(store.events.insert().values(kind=kind, key=key, at=now))
        if secrets.randbelow(200) == 0:  # now and then, forget events older than a day
            conn.execute(store.events.delete().where(store.events.c.at < now - 86400))

    # --- sign-up ------------------------------------------------------------------------
    def challenge(self) -> dict:
        """A proof-of-work challenge: find a nonce whose SHA-256 of ``challenge:nonce``
        starts with ``bits`` zero bits (:func:`prizenet.judge.client.solve`)."""
        c = self.contest()
        body = f"{int(time.time())}.{secrets.token_hex(8)}"
        mac = hmac.new(c.secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]
        return {"challenge": f"{body}.{mac}", "bits": c.pow_bits, "expires_in_s": CHALLENGE_TTL_S}

    def _spend(self, conn, c, challenge: str, nonce: str) -> None:
        parts = challenge.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise Rejected(400, "malformed proof-of-work challenge; GET /api/signup/challenge for one")
        body, mac = f"{parts[0]}.{parts[1]}", parts[2]
        good = hmac.new(c.secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, good):
            raise Rejected(400, "this proof-of-work challenge was not issued by this server")
        if time.time() - int(parts[0]) > CHALLENGE_TTL_S:
            raise Rejected(400, f"this proof-of-work challenge expired ({CHALLENGE_TTL_S} s); get a new one")
        if not pow_ok(challenge, nonce, c.pow_bits):
            raise Rejected(400, f"the nonce does not solve the challenge ({c.pow_bits} leading zero bits)")
        try:
            with conn.begin_nested():
                conn.execute(store.challenges.insert().values(challenge=challenge, spent_at=time.time()))
        except sa.exc.IntegrityError:
            raise Rejected(400, "this proof-of-work challenge was already used") from None
        if secrets.randbelow(200) == 0:  # now and then, forget spent challenges past their age
            conn.execute(store.challenges.delete().where(store.challenges.c.spent_at < time.time() - 2 * CHALLENGE_TTL_S))

    def signup(self, name: str, contact: str, accept_rules: bool, members: list[dict], challenge: str,
               nonce: str, address: str) -> dict:
        """A new team. Returns its token, shown this once: only its hash is kept."""
        name = _text(name, "team name", 1, 40)
        contact = _text(contact, "contact", 3, 200)
        if "@" not in contact:
            raise Rejected(422, "contact should be an e-mail address")
        if accept_rules is not True:
            raise Rejected(422, "a team must accept the contest's rules (GET /rules) to sign up")
        if len(members) > 20:
            raise Rejected(422, "at most 20 members")
        members = [{"name": _text(m.get("name", ""), "member name", 1, 80),
                    "contact": _text(m["contact"], "member contact", 3, 200) if m.get("contact") else None}
                   for m in members]
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        with store.write(self.engine) as conn:
            c = self.contest(conn)
            if c.closed_at is not None:
                raise Rejected(403, f"the contest closed at {iso(c.closed_at)}")
            self._spend(conn, c, challenge, nonce)
            self._limit(conn, "signup", address, c.signups_per_hour, "sign-ups from this address")
            try:
                with conn.begin_nested():
                    team_id = conn.execute(store.teams.insert().values(
                        name=name, name_key=name.casefold(), contact=contact, token_sha256=token_hash(token),
                        address=address, rules_accepted_at=now, created_at=now)).inserted_primary_key[0]
            except sa.exc.IntegrityError:
                raise Rejected(409, f"a team named {name!r} exists already") from None
            for m in members:
                conn.execute(store.members.insert().values(team_id=team_id, added_at=now, **m))
        return {"team": name, "token": token, "members": [m["name"] for m in members]}

    def team_for(self, token: str | None) -> Team:
        if not token:
            raise Rejected(401, "this needs the team's token: 'Authorization: Bearer TOKEN'")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(store.teams.c.id, store.teams.c.name).where(
                store.teams.c.token_sha256 == token_hash(token))).first()
        if row is None:
            raise Rejected(401, "unknown token")
        return Team(row.id, row.name)

    def add_member(self, team: Team, name: str, contact: str | None) -> dict:
        name = _text(name, "member name", 1, 80)
        contact = _text(contact, "member contact", 3, 200) if contact else None
        with store.write(self.engine) as conn:
            n = conn.execute(sa.select(sa.func.count()).where(store.members.c.team_id == team.id)).scalar()
            if n >= 20:
                raise Rejected(422, "at most 20 members")
            conn.execute(store.members.insert().values(team_id=team.id, name=name, contact=contact,
                                                       added_at=utcnow()))
        return self.team_view(team)

    # --- submissions --------------------------------------------------------------------
    def admit(self, team: Team, address: str) -> int:
        """Before an upload is read: the contest open, the attempt within the rate limits,
        a slot left today. Returns the upload cap in bytes."""
        now = utcnow()
        with store.write(self.engine) as conn:
            c = self.contest(conn)
            if (why := self._open(c, now)) is not None:
                raise Rejected(403, why)
            self._limit(conn, "attempt", f"team:{team.id}", c.attempts_per_hour, "submission attempts by this team")
            self._limit(conn, "attempt", f"addr:{address}", 3 * c.attempts_per_hour,
                        "submission attempts from this address")
            self._check_day(conn, c, team, now)
        return c.max_upload_bytes

    @staticmethod
    def _used(conn, team: Team, day: str) -> int:
        return conn.execute(sa.select(sa.func.count()).where(
            store.submissions.c.team_id == team.id, store.submissions.c.day == day)).scalar()

    def _check_day(self, conn, c, team: Team, now: datetime) -> int:
        used = self._used(conn, team, now.date().isoformat())
        if used >= c.daily_limit:
            tomorrow = datetime.combine(now.date(), datetime.min.time()) + timedelta(days=1)
            wait = int((tomorrow - utcnow()).total_seconds()) + 1
            raise Rejected(429, f"this team's {c.daily_limit} scored submission(s) of {now.date()} (UTC) are used; "
                                f"the next is taken after midnight UTC, in {wait} s", wait)
        return used

    def read_upload(self, data: bytes, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """The upload's predictions: gunzipped when it is gzip (capped unpacked too), parsed
        by the project's reader. A :class:`Rejected` names the line or the movie block."""
        if data[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                text = d.decompress(data, cap + 1)
            except zlib.error as e:
                raise Rejected(400, f"the upload is not a readable gzip file ({e})") from None
            if len(text) > cap or d.unconsumed_tail:
                raise Rejected(413, f"the upload unpacks to more than {cap:,} bytes")
            if not d.eof:
                raise Rejected(400, "the gzip upload is truncated (its end is missing): nothing was scored")
            if d.unused_data:  # a second gzip member: rare, read it the slow way
                try:
                    text = gzip.GzipFile(fileobj=io.BytesIO(data)).read(cap + 1)
                except (OSError, EOFError) as e:
                    raise Rejected(400, f"the upload is not a readable gzip file ({e})") from None
                if len(text) > cap:
                    raise Rejected(413, f"the upload unpacks to more than {cap:,} bytes")
        else:
            text = data
        try:
            return parse_predictions(to_array(text), "the submission")
        except DataFormatError as e:
            raise Rejected(400, str(e)) from None

    def submit(self, team: Team, data: bytes, address: str, sha256_claimed: str | None = None,
               note: str | None = None) -> dict:
        """Score an upload and keep it, within the day's limit. The team sees its quiz RMSE."""
        digest = hashlib.sha256(data).hexdigest()
        if sha256_claimed and sha256_claimed.lower() != digest:
            raise Rejected(400, f"the upload's SHA-256 is {digest}, not the {sha256_claimed} sent with it: "
                                f"it was damaged on the way; nothing was scored")
        note = _text(note, "note", 0, 200) if note else None
        c = self.contest()
        movie, pred = self.read_upload(data, c.max_upload_bytes)
        try:
            scores = judge(movie, pred, self.key, c.reference_rmse, "the submission", "the qualifying set")
        except DataFormatError as e:
            raise Rejected(400, str(e)) from None
        now = utcnow()
        day = now.date().isoformat()
        with store.write(self.engine) as conn:
            c = self.contest(conn)
            if (why := self._open(c, now)) is not None:
                raise Rejected(403, why)
            while True:  # the unique (team, day, slot) decides a race for the last slot
                used = self._check_day(conn, c, team, now)
                try:
                    with conn.begin_nested():
                        sub_id = conn.execute(store.submissions.insert().values(
                            team_id=team.id, day=day, slot=used + 1, received_at=now, sha256=digest,
                            bytes=len(data), n=scores["n"], clipped=scores["clipped"],
                            quiz_rmse=scores["quiz_rmse"], test_rmse=scores["test_rmse"],
                            note=note)).inserted_primary_key[0]
                    break
                except sa.exc.IntegrityError:
                    continue
        return {"id": sub_id, "team": team.name, "received_at": iso(now), "sha256": digest, "bytes": len(data),
                "n": scores["n"], "clipped": scores["clipped"], "quiz_rmse": scores["quiz_rmse"],
                "improvement_pct": scores["improvement_pct"], "reference_rmse": c.reference_rmse,
                "left_today": c.daily_limit - used - 1, "note": note}

    # --- views ------------------------------------------------------------------------
    def _entries(self, conn) -> list[dict]:
        """Each team with submissions: its entry (best quiz, earliest of equals), count, last time."""
        s, t = store.submissions, store.teams
        rows = conn.execute(sa.select(s.c.team_id, t.c.name, s.c.id, s.c.quiz_rmse, s.c.test_rmse, s.c.received_at)
                            .join(t, t.c.id == s.c.team_id)
                            .order_by(s.c.team_id, s.c.quiz_rmse, s.c.received_at, s.c.id)).all()
        entries: dict[int, dict] = {}
        for r in rows:
            e = entries.get(r.team_id)
            if e is None:
                entries[r.team_id] = {"team": r.name, "submission": r.id, "quiz_rmse": r.quiz_rmse,
                                      "test_rmse": r.test_rmse, "entry_at": r.received_at, "submissions": 1,
                                      "last_at": r.received_at}
            else:
                e["submissions"] += 1
                e["last_at"] = max(e["last_at"], r.received_at)
        return list(entries.values())

    def leaderboard(self) -> dict:
        """The public board: by best quiz RMSE while open; after the close, the final
        ranking by the entries' test RMSE (with their quiz RMSE beside)."""
        with self.engine.connect() as conn:
            c = self.contest(conn)
            version = (conn.execute(sa.select(sa.func.max(store.submissions.c.id))).scalar(), c.closed_at)
            if self._board is not None and self._board[0] == version:
                return self._board[1]
            entries = self._entries(conn)
        final = c.closed_at is not None
        by = "test_rmse" if final else "quiz_rmse"
        entries.sort(key=lambda e: (e[by], e["entry_at"], e["submission"]))
        ref = c.reference_rmse
        rows = []
        for rank, e in enumerate(entries, 1):
            row = {"rank": rank, "team": e["team"], "quiz_rmse": e["quiz_rmse"],
                   "improvement_pct": None if ref is None else 100.0 * (ref - e[by]) / ref,
                   "submissions": e["submissions"], "last_submission_at": iso(e["last_at"]),
                   "entry_at": iso(e["entry_at"])}
            if final:
                row["test_rmse"] = e["test_rmse"]
            rows.append(row)
        # The Prize's "lines in the sand": the reference's RMSE and the target's (10% better).
        lines = [] if ref is None else [
            {"label": f"Grand prize: {c.target_pct:g}% better than the reference", "rmse": ref * (1 - c.target_pct / 100)},
            {"label": "The reference", "rmse": ref}]
        board = {"contest": c.name, "final": final, "ranked_by": by, "reference_rmse": ref,
                 "closed_at": iso(c.closed_at), "lines": lines, "rows": rows}
        self._board = (version, board)
        return board

    def team_view(self, team: Team) -> dict:
        """A team's own page: members and every submission it made (test RMSE after the close)."""
        with self.engine.connect() as conn:
            c = self.contest(conn)
            final = c.closed_at is not None
            members = conn.execute(sa.select(store.members.c.name).where(store.members.c.team_id == team.id)
                                   .order_by(store.members.c.id)).scalars().all()
            subs = conn.execute(sa.select(store.submissions).where(store.submissions.c.team_id == team.id)
                                .order_by(store.submissions.c.id)).all()
            used = self._used(conn, team, utcnow().date().isoformat())
        out = []
        for s in subs:
            row = {"id": s.id, "received_at": iso(s.received_at), "sha256": s.sha256, "bytes": s.bytes,
                   "n": s.n, "clipped": s.clipped, "quiz_rmse": s.quiz_rmse, "note": s.note}
            if final:
                row["test_rmse"] = s.test_rmse
            out.append(row)
        return {"team": team.name, "members": list(members), "final": final, "submissions": out,
                "left_today": max(0, c.daily_limit - used), "daily_limit": c.daily_limit}


def export(engine: sa.engine.Engine, out: str | Path) -> int:
    """Every submission with both scores, for the organiser: a CSV (atomic write)."""
    import pandas as pd
    s, t = store.submissions, store.teams
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.id, t.c.name.label("team"), t.c.contact, s.c.received_at, s.c.day,
                                      s.c.sha256, s.c.bytes, s.c.n, s.c.clipped, s.c.quiz_rmse, s.c.test_rmse,
                                      s.c.note).join(t, t.c.id == s.c.team_id).order_by(s.c.id)).all()
    frame = pd.DataFrame([dict(r._mapping) for r in rows],
                         columns=["id", "team", "contact", "received_at", "day", "sha256", "bytes", "n", "clipped",
                                  "quiz_rmse", "test_rmse", "note"])
    atomic_write(out, [frame.to_csv(index=False).encode()])
    return len(frame)


def _text(value, what: str, lo: int, hi: int) -> str:
    """A short human text: trimmed, no control characters, ``lo``-``hi`` characters."""
    if not isinstance(value, str):
        raise Rejected(422, f"{what} should be text")
    value = unicodedata.normalize("NFC", value.strip())
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise Rejected(422, f"{what} holds control characters")
    if not lo <= len(value) <= hi:
        raise Rejected(422, f"{what} should be {lo}-{hi} characters, has {len(value)}")
    return value
