"""What a team runs against a judging service: the standard library only, so it works
from any prizenet install (no server extra).

    from prizenet.judge import client
    team = client.signup("http://127.0.0.1:8000", "Gravity", "gravity@example.org", accept_rules=True)
    client.submit("http://127.0.0.1:8000", "outputs/.../submission.txt", team["token"])  # -> the quiz RMSE

The token comes from the environment (``PRIZENET_JUDGE_TOKEN``) in the command-line tools
and in ``train.py trainer.submit_to=URL``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

TOKEN_ENV = "PRIZENET_JUDGE_TOKEN"


class JudgeError(RuntimeError):
    """The service refused a request (its message) or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def pow_ok(challenge: str, nonce: str, bits: int) -> bool:
    """Whether SHA-256 of ``challenge:nonce`` starts with ``bits`` zero bits."""
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - bits) == 0 if bits else True


def solve(challenge: str, bits: int) -> str:
    """The first nonce (a decimal number) that solves the challenge: about 2**bits tries."""
    prefix = hashlib.sha256(f"{challenge}:".encode())
    shift = 256 - bits
    for n in itertools.count():
        h = prefix.copy()
        h.update(str(n).encode())
        if bits == 0 or int.from_bytes(h.digest(), "big") >> shift == 0:
            return str(n)
    raise AssertionError("unreachable")


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
             timeout: float = 300.0, raw: bool = False):
    """The answer's JSON (its bytes with ``raw``); a refusal as :class:`JudgeError` with the
    service's message and status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
            return data if raw else json.loads(data or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("detail", text)
        except ValueError:
            message = text or e.reason
        raise JudgeError(f"{method} {url}: {e.code}: {message}", e.code) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise JudgeError(f"{method} {url}: the judging service cannot be reached ({reason})") from None


def _json(url: str, payload: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return _request(url, "POST", json.dumps(payload).encode(), headers)


def _auth(token: str | None) -> dict:
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise JudgeError(f"no team token: pass one or set ${TOKEN_ENV} (the token sign-up printed)")
    return {"Authorization": f"Bearer {token}"}


def contest(url: str) -> dict:
    return _request(f"{url.rstrip('/')}/api/contest")


def signup(url: str, name: str, contact: str, accept_rules: bool, members: list[dict] | None = None) -> dict:
    """Sign a team up (solving the service's proof of work). The token in the answer is
    shown this once: keep it."""
    base = url.rstrip("/")
    ch = _request(f"{base}/api/signup/challenge")
    nonce = solve(ch["challenge"], ch["bits"])
    return _json(f"{base}/api/teams", {"name": name, "contact": contact, "accept_rules": accept_rules,
                                       "members": members or [], "challenge": ch["challenge"], "nonce": nonce})


def submit(url: str, path: str | Path, token: str | None = None, note: str | None = None) -> dict:
    """Send a Prize-format submission (``.txt`` or ``.gz``, sent as it is on disk) with its
    SHA-256, so damage on the way is refused rather than scored. Returns the quiz score."""
    data = Path(path).read_bytes()
    headers = {**_auth(token), "Content-Type": "application/octet-stream",
               "X-Submission-SHA256": hashlib.sha256(data).hexdigest(), "X-Filename": Path(path).name}
    if note:
        headers["X-Note"] = urllib.parse.quote(note)  # headers are Latin-1: the note travels percent-encoded
    return _request(f"{url.rstrip('/')}/api/submissions", "POST", data, headers)


def team(url: str, token: str | None = None) -> dict:
    return _request(f"{url.rstrip('/')}/api/team", headers=_auth(token))


def leaderboard(url: str) -> dict:
    return _request(f"{url.rstrip('/')}/api/leaderboard")
