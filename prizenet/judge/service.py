"""The judging service over HTTP: FastAPI on uvicorn, a thin layer over :mod:`.contest`.

FastAPI because it is a well-kept ASGI framework whose request bodies stream (an upload is
counted against its cap as it arrives and cut off there, not read whole first), whose JSON bodies are
validated from type hints, and which publishes an OpenAPI description at ``/openapi.json``
(and ``/docs``) that teams can build clients from. uvicorn is the ASGI server it documents.

    GET  /                       the leaderboard (HTML)          GET /api/leaderboard  (JSON)
    GET  /rules                  the rules and how to take part  GET /api/contest
    GET  /signup, /team          sign-up and a team's page in the browser (static/judge.js)
    GET  /api/signup/challenge   a proof-of-work challenge
    POST /api/teams              sign up: {name, contact, accept_rules, members, challenge, nonce}
    GET  /api/team               the team's own submissions      (Authorization: Bearer TOKEN)
    POST /api/team/members       add a member: {name, contact}   (Bearer)
    POST /api/submissions        the file as the body, .txt or .gz (Bearer); optional headers:
                                 X-Submission-SHA256, X-Note (percent-encoded UTF-8)
    GET  /healthz

Scoring runs in worker threads, at most ``scorers`` at once (each holds an upload and its
arrays), so readers of the leaderboard are not kept waiting behind them.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from .contest import Judge, Rejected


class Member(BaseModel):
    name: str
    contact: str | None = None


class SignUp(BaseModel):
    name: str
    contact: str
    accept_rules: bool = False
    members: list[Member] = Field(default_factory=list)
    challenge: str
    nonce: str


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def make_app(judge: Judge, scorers: int | None = None) -> FastAPI:
    app = FastAPI(title="prizenet judging service", version="1",
                  description="Teams send qualifying predictions; the quiz RMSE is public, the test RMSE "
                              "is kept until the contest closes.")
    gate = asyncio.Semaphore(scorers or os.cpu_count() or 1)

    @app.exception_handler(Rejected)
    async def _rejected(_request: Request, e: Rejected):
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else None
        return JSONResponse({"detail": e.message}, status_code=e.status, headers=headers)

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.get("/api/contest")
    def contest():
        return judge.public()

    rendered: list = [None]  # (key, board, JSON, page): made once per change of the board, swapped whole

    def board(kind: str) -> Response:
        contest, now = judge.public(), judge.leaderboard()
        key = (id(now), contest["open"])
        made = rendered[0]
        if made is None or made[0] != key:
            made = (key, now, json.dumps(now).encode(), leaderboard_html(contest, now).encode())
            rendered[0] = made
        if kind == "json":
            return Response(made[2], media_type="application/json")
        return Response(made[3], media_type="text/html")

    @app.get("/api/leaderboard")
    def leaderboard():
        return board("json")

    @app.get("/api/signup/challenge")
    def challenge():
        return judge.challenge()

    @app.post("/api/teams", status_code=201)
    def signup(body: SignUp, request: Request):
        return judge.signup(body.name, body.contact, body.accept_rules, [m.model_dump() for m in body.members],
                            body.challenge, body.nonce, _address(request))

    @app.get("/api/team")
    def team(request: Request):
        return judge.team_view(judge.team_for(_token(request)))

    @app.post("/api/team/members")
    def add_member(body: Member, request: Request):
        return judge.add_member(judge.team_for(_token(request)), body.name, body.contact)

    @app.post("/api/submissions", status_code=201)
    async def submit(request: Request):
        team = await run_in_threadpool(judge.team_for, _token(request))
        address = _address(request)
        cap = await run_in_threadpool(judge.admit, team, address)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise Rejected(413, f"the upload is {int(length):,} bytes; the cap is {cap:,}")
        async with gate:
            data = bytearray()
            async for chunk in request.stream():
                data += chunk
                if len(data) > cap:
                    raise Rejected(413, f"the upload is over the cap of {cap:,} bytes")
            note = urllib.parse.unquote(request.headers.get("x-note", "")) or None  # percent-encoded UTF-8
            return await run_in_threadpool(judge.submit, team, bytes(data), address,
                                           request.headers.get("x-submission-sha256"), note)

    @app.get("/", response_class=HTMLResponse)
    def board_page():
        return board("html")

    @app.get("/rules", response_class=HTMLResponse)
    def rules_page(request: Request):
        return rules_html(judge.public(), str(request.base_url).rstrip("/"))

    @app.get("/signup", response_class=HTMLResponse)
    def signup_page():
        return signup_html(judge.public())

    @app.get("/team", response_class=HTMLResponse)
    def team_page():
        return team_html(judge.public())

    script = (Path(__file__).parent / "static" / "judge.js").read_bytes()

    @app.get("/static/judge.js")
    def judge_js():
        return Response(script, media_type="text/javascript")

    return app


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:nth-child(2), td:nth-child(2) { text-align: left; }
thead th { background: #f3f3f3; }
.status, .note { color: #555; } .error { color: #b00; }
tr.line td { text-align: left; color: #b00; font-size: .9em; border-bottom: 2px solid #b00; }
pre { background: #f6f6f6; padding: .8rem; overflow-x: auto; }
"""


def _page(contest: dict, what: str, body: str, heading: str | None = None, script: bool = False) -> str:
    """One of the contest's pages: titled "NAME: what", headed "NAME: heading" (``what`` by
    default), ``body`` below, then judge.js where the page needs it."""
    title = f"{contest['name']}: {what}"
    js = "<script src='/static/judge.js'></script>" if script else ""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(contest['name'])}: {html.escape(heading or what)}</h1>{body}{js}</body></html>")


def leaderboard_html(contest: dict, board: dict) -> str:
    """The leaderboard as a page: plain HTML, every team name escaped."""
    e = html.escape
    final = board["final"]
    ref = board["reference_rmse"]
    if final:
        status = f"Closed {e(board['closed_at'] or '')}: the final ranking, by each team's entry's test RMSE."
    elif contest["open"]:
        status = "Open: ranked by each team's best quiz RMSE; the test RMSE is kept until the close."
    else:
        status = "Not taking submissions now: " + ("opens " + e(contest["opens_at"]) if contest["opens_at"]
                                                   else "closed for submissions")
    head = ["Rank", "Team", "Best quiz RMSE"] + (["Test RMSE"] if final else []) + \
        ([f"% improvement over {ref:.4f}"] if ref is not None else []) + ["Submissions", "Last submission (UTC)"]
    rows = []
    by = board["ranked_by"]
    lines = sorted(board.get("lines", []), key=lambda x: x["rmse"])
    for r in board["rows"] + [None]:
        while lines and (r is None or r[by] > lines[0]["rmse"]):  # a line above the first team not past it
            line = lines.pop(0)
            rows.append(f"<tr class=line><td colspan={len(head)}>{e(line['label'])}: RMSE {line['rmse']:.4f}</td></tr>")
        if r is None:
            break
        cells = [str(r["rank"]), e(r["team"]), f"{r['quiz_rmse']:.4f}"]
        if final:
            cells.append(f"{r['test_rmse']:.4f}")
        if ref is not None:
            cells.append(f"{r['improvement_pct']:.2f}")
        cells += [str(r["submissions"]), e((r["last_submission_at"] or "").replace("T", " ").rstrip("Z"))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    empty = f"<tr><td colspan={len(head)}>No submissions yet.</td></tr>" if not board["rows"] else ""
    body = (f"<p class=status id=status>{status}</p>"
            f"<table id=leaderboard><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead>"
            f"<tbody>{empty}{''.join(rows)}</tbody></table>"
            f"<p><a href='/rules'>Rules and how to take part</a> · <a href='/signup'>Sign up</a> · "
            f"<a href='/team'>Your team</a> · <a href='/api/leaderboard'>JSON</a> · "
            f"{contest['n_predictions']:,} qualifying predictions, {contest['n_quiz']:,} of them in the quiz half; "
            f"{contest['daily_limit']} scored submission(s) per team per day.</p>")
    return _page(contest, "leaderboard", body)


def signup_html(contest: dict) -> str:
    """Sign-up in the browser: the form, the rules, and judge.js to solve the proof of work."""
    e = html.escape
    body = (f"<form id=signup><p><label>Team name <input name=name required maxlength=40></label></p>"
            f"<p><label>Contact e-mail <input name=contact type=email required maxlength=200></label></p>"
            f"<p><label>Members, one per line<br><textarea name=members rows=4 cols=40></textarea></label></p>"
            f"<pre>{e(contest['rules'])}</pre>"
            f"<p><label><input type=checkbox name=accept required> I accept the rules</label></p>"
            f"<p><button type=submit>Sign up</button> (your browser solves a small proof of work first: "
            f"{contest['pow_bits']} bits, a few seconds)</p></form>"
            f"<p id=message class=note></p>"
            f"<div id=done hidden><p>Your team's token:</p><pre><code id=token></code></pre>"
            f"<p>Use it on <a href='/team'>your team's page</a>, or with <code>export PRIZENET_JUDGE_TOKEN=...</code> "
            f"for <code>prizenet judge submit</code> and <code>train.py trainer.submit_to</code>.</p></div>"
            f"<p><a href='/'>Leaderboard</a> · <a href='/rules'>Rules</a></p>")
    return _page(contest, "sign up", body, heading="sign up a team", script=True)


def team_html(contest: dict) -> str:
    """A team's page: its submissions and an upload form, read with its token (judge.js)."""
    body = ("<form id=login><label>Team token <input name=token type=password required size=50 autocomplete=off></label> "
            "<button type=submit>Show</button></form><p id=message class=note></p>"
            "<div id=team hidden><h2 id=team-name></h2><p id=left></p>"
            "<form id=upload><label>Submission (.txt or .gz) <input type=file name=file></label> "
            "<label>Note <input name=note maxlength=200></label> <button type=submit>Submit</button></form>"
            "<table id=submissions><thead><tr><th>#</th><th>Received (UTC)</th><th>Quiz RMSE</th>"
            "<th id=test-head hidden>Test RMSE</th><th>Note</th><th>SHA-256</th></tr></thead><tbody></tbody></table>"
            "</div><p><a href='/'>Leaderboard</a> · <a href='/signup'>Sign up</a></p>")
    return _page(contest, "your team", body, script=True)


def rules_html(contest: dict, base_url: str) -> str:
    e = html.escape
    how = (f"pip install prizenet\n"
           f"prizenet judge signup --url {base_url} --name TEAM --contact you@example.org --accept-rules\n"
           f"export PRIZENET_JUDGE_TOKEN=...   # printed once by signup\n"
           f"prizenet judge submit submission.txt --url {base_url}\n"
           f"python train.py trainer.submit_to={base_url}   # or straight from a run")
    body = (f"<pre>{e(contest['rules'])}</pre>"
            f"<h2>Taking part</h2><pre>{e(how)}</pre>"
            f"<p>Or in the browser: <a href='/signup'>sign up</a>, then upload on <a href='/team'>your team's "
            f"page</a>. Uploads up to {contest['max_upload_bytes']:,} bytes, plain or gzipped. "
            f"The API is described at <a href='/docs'>/docs</a>. <a href='/'>Leaderboard</a></p>")
    return _page(contest, "rules", body)


def serve(judge: Judge, host: str = "127.0.0.1", port: int = 8000, scorers: int | None = None,
          forwarded_allow_ips: str | None = None, log_level: str = "info") -> None:
    """Run the service until interrupted. ``forwarded_allow_ips``: the reverse proxies whose
    X-Forwarded-For names the client (for the per-address limits); none by default."""
    import uvicorn
    uvicorn.run(make_app(judge, scorers), host=host, port=port, log_level=log_level,
                proxy_headers=forwarded_allow_ips is not None, forwarded_allow_ips=forwarded_allow_ips)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(answers: str | Path, db: str, port: int | None = None, options: tuple[str, ...] = (),
          log: Path | None = None, timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """``prizenet judge serve`` in a process of its own on 127.0.0.1, returned once it
    answers (for tests and benchmarks): (the process, its URL). ``options``: serve's own."""
    port = free_port() if port is None else port
    url = f"http://127.0.0.1:{port}"
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "prizenet", "judge", "serve", "--answers", str(answers),
                             "--db", db, "--port", str(port), *options], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                said = Path(log).read_text()[-2000:] if log else ""
                raise RuntimeError(f"the judging service did not start on {url}: {said}") from None
            time.sleep(0.2)
