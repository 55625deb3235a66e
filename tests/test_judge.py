"""The judging service: real server processes on 127.0.0.1 driven over HTTP, the database
read directly where the rules are about what is stored."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the judging service needs the judge extra: pip install -e '.[judge]'")

from prizenet.cli import judge as judge_cli  # noqa: E402
from prizenet.data import DataFormatError  # noqa: E402
from prizenet.data.submission import read_answers, score, write_answers, write_submission  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from prizenet.judge import client, store  # noqa: E402
from prizenet.judge.service import free_port, spawn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --- fixtures: an answer key, submissions, servers ----------------------------------------
@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    """A small answer key: 40 movie blocks, 3,000 pairs, half quiz."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(20, 130, 40)
    movie = np.repeat(rng.permutation(np.arange(1, 200))[:40], sizes)
    n = len(movie)
    path = tmp_path_factory.mktemp("key") / "answers.csv"
    write_answers(path, movie, rng.integers(1, 10**6, n), np.full(n, "2005-12-01"), rng.integers(1, 6, n),
                  rng.integers(0, 2, n))
    return path


def predictions(key: Path, quiz_noise: float, test_noise: float, seed: int = 0) -> np.ndarray:
    k = read_answers(key)
    rng = np.random.default_rng(seed)
    quiz = (k["subset"] == "quiz").to_numpy()
    noise = np.where(quiz, quiz_noise, test_noise) * rng.standard_normal(len(k))
    return np.clip(k["rating"].to_numpy() + noise, 1, 5)


def submission(key: Path, path: Path, quiz_noise: float = 0.8, test_noise: float = 0.8, seed: int = 0) -> Path:
    write_submission(path, read_answers(key)["movie_id"].to_numpy(), predictions(key, quiz_noise, test_noise, seed))
    return path


#: A PostgreSQL database the HTTP tests also run on (its tables are dropped first), e.g.
#: postgresql+psycopg2://judge:judge@127.0.0.1/judge; .ci/run starts one. Unset: SQLite only.
POSTGRES = os.environ.get("PRIZENET_TEST_POSTGRES")


class Server:
    """``prizenet judge create`` then ``prizenet judge serve`` in a process of its own, on
    SQLite in ``folder`` or on the PostgreSQL database ``db``."""

    def __init__(self, folder: Path, key: Path, *options: str, db: str | None = None):
        self.db = db or f"sqlite:///{folder / 'contest.db'}"
        if db:
            eng = store.engine(db)
            store.metadata.drop_all(eng)
            eng.dispose()
        assert judge_cli.main(["create", "--answers", str(key), "--db", self.db, "--pow-bits", "8", *options]) == 0
        self.proc, self.url = spawn(key, self.db, log=folder / "server.log")
        self.engine = store.engine(self.db)

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path: str, body: bytes, token: str | None = None, headers: dict | None = None):
        h = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(self.url + path, data=body, method="POST", headers={**h, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}"), e.headers

    def rows(self, sql: str) -> list:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql)).all()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path, key):
    """Starts servers on the backend of the test's parameter."""
    if request.param == "postgresql" and not POSTGRES:
        pytest.skip("no PostgreSQL to test on: set PRIZENET_TEST_POSTGRES to a database URL (.ci/run starts one)")
    made = []

    def start(*options: str) -> Server:
        folder = tmp_path / f"server{len(made)}"
        folder.mkdir()
        made.append(Server(folder, key, *options, db=POSTGRES if request.param == "postgresql" else None))
        return made[-1]

    yield start
    for s in made:
        s.stop()


def signup(url: str, name: str) -> str:
    return client.signup(url, name, f"{name.lower()}@example.org", True)["token"]


# --- the whole flow --------------------------------------------------------------------
def test_whole_flow_over_http(server, key, tmp_path):
    """Sign up, submit, leaderboard (JSON and HTML), the daily limit, the close, the final
    ranking by test RMSE, the export: through a real server."""
    s = server("--daily-limit", "2", "--reference", "1.1", "--name", "Test Prize")
    a, b = signup(s.url, "Alpha"), signup(s.url, "Beta")
    # Alpha is better on the quiz half, Beta on the test half: the two rankings differ.
    sub_a = submission(key, tmp_path / "a.txt", quiz_noise=0.5, test_noise=0.9)
    sub_b = submission(key, tmp_path / "b.txt.gz", quiz_noise=0.7, test_noise=0.4, seed=1)
    want_a, want_b = score(sub_a, key, 1.1), score(sub_b, key, 1.1)
    got_a = client.submit(s.url, sub_a, a, note="first: SVD++ à 200")
    assert got_a["quiz_rmse"] == pytest.approx(want_a["quiz_rmse"], abs=1e-12)
    assert got_a["improvement_pct"] == pytest.approx(want_a["improvement_pct"])
    assert got_a["left_today"] == 1 and got_a["sha256"] == hashlib.sha256(sub_a.read_bytes()).hexdigest()
    got_b = client.submit(s.url, sub_b, b)
    assert got_b["quiz_rmse"] == pytest.approx(want_b["quiz_rmse"], abs=1e-12)

    worse = submission(key, tmp_path / "a2.txt", 1.0, 1.0, seed=2)
    client.submit(s.url, worse, a)  # Alpha's second and last of the day; its best stays the first
    with pytest.raises(client.JudgeError, match="429.*scored submission"):
        client.submit(s.url, sub_a, a)
    assert s.rows("select count(*) from submissions") == [(3,)]

    board = client.leaderboard(s.url)
    assert not board["final"] and [r["team"] for r in board["rows"]] == ["Alpha", "Beta"]
    assert board["rows"][0]["quiz_rmse"] == pytest.approx(want_a["quiz_rmse"], abs=1e-12)
    assert board["rows"][0]["submissions"] == 2 and board["rows"][1]["submissions"] == 1
    assert board["rows"][0]["improvement_pct"] == pytest.approx(100 * (1.1 - want_a["quiz_rmse"]) / 1.1)
    assert all("test_rmse" not in r for r in board["rows"])
    assert [x["rmse"] for x in board["lines"]] == [pytest.approx(0.99), pytest.approx(1.1)]
    status, page = s.get("/")
    assert status == 200 and "Alpha" in page and f"{want_a['quiz_rmse']:.4f}" in page and "Test RMSE" not in page

    view = client.team(s.url, a)
    assert [x["note"] for x in view["submissions"]] == ["first: SVD++ à 200", None] and view["left_today"] == 0

    assert judge_cli.main(["close", "--db", s.db]) == 0  # while the server runs
    final = client.leaderboard(s.url)
    assert final["final"] and final["ranked_by"] == "test_rmse"
    assert [r["team"] for r in final["rows"]] == ["Beta", "Alpha"]  # Alpha's entry: its best quiz submission
    assert final["rows"][0]["test_rmse"] == pytest.approx(want_b["test_rmse"], abs=1e-12)
    assert final["rows"][1]["test_rmse"] == pytest.approx(want_a["test_rmse"], abs=1e-12)
    status, page = s.get("/")
    assert "Test RMSE" in page and f"{want_b['test_rmse']:.4f}" in page
    with pytest.raises(client.JudgeError, match="403.*closed"):
        client.submit(s.url, sub_b, b)

    out = tmp_path / "results.csv"
    assert judge_cli.main(["export", "--db", s.db, "--out", str(out)]) == 0
    import pandas as pd
    res = pd.read_csv(out)
    assert list(res["team"]) == ["Alpha", "Beta", "Alpha"]
    assert res["test_rmse"].iloc[1] == pytest.approx(want_b["test_rmse"])


def test_equal_scores_rank_by_time(server, key, tmp_path):
    s = server()
    first, second = signup(s.url, "Early"), signup(s.url, "Late")
    sub = submission(key, tmp_path / "same.txt")
    client.submit(s.url, sub, second)  # "Late" signed up second but submits first
    client.submit(s.url, sub, first)
    assert [r["team"] for r in client.leaderboard(s.url)["rows"]] == ["Late", "Early"]
    judge_cli.main(["close", "--db", s.db])
    assert [r["team"] for r in client.leaderboard(s.url)["rows"]] == ["Late", "Early"]


def test_test_rmse_appears_nowhere_before_the_close(server, key, tmp_path):
    """Every route the service has (read off its OpenAPI description, so a new one is
    covered or this fails), every answer: no test score, no test_rmse field."""
    s = server("--daily-limit", "3")
    token = signup(s.url, "Watcher")
    sub = submission(key, tmp_path / "w.txt", 0.6, 0.3)
    test_rmse = score(sub, key)["test_rmse"]
    bodies = [json.dumps(client.submit(s.url, sub, token))]
    status, member, _ = s.post("/api/team/members", json.dumps({"name": "Ann"}).encode(), token,
                               {"Content-Type": "application/json"})
    assert status == 200
    bodies.append(json.dumps(member))
    ch = client._request(f"{s.url}/api/signup/challenge")
    made = client._json(f"{s.url}/api/teams", {"name": "Other", "contact": "o@example.org", "accept_rules": True,
                                               "challenge": ch["challenge"], "nonce": client.solve(ch["challenge"],
                                                                                                   ch["bits"])})
    bodies += [json.dumps(ch), json.dumps(made)]
    status, spec = s.get("/openapi.json")
    paths = json.loads(spec)["paths"]
    gets = sorted(p for p, ops in paths.items() if "get" in ops)
    posts = sorted(p for p, ops in paths.items() if "post" in ops)
    assert posts == ["/api/submissions", "/api/team/members", "/api/teams"]  # each answered above
    script = None
    for p in gets + ["/openapi.json", "/docs"]:
        status, text = s.get(p, token)
        assert status == 200, p
        if p == "/static/judge.js":
            script = text  # code: it names the field it shows after the close
        else:
            bodies.append(text)
    assert s.rows("select test_rmse from submissions") == [(pytest.approx(test_rmse),)]  # it is stored
    shown = [f"{test_rmse:.{d}f}" for d in (3, 4, 5, 6)] + [repr(test_rmse), str(test_rmse)[:8]]
    for body in bodies:
        assert "test_rmse" not in body
    for body in bodies + [script]:
        for text in shown:
            assert text not in body
    judge_cli.main(["close", "--db", s.db])
    assert f"{test_rmse:.4f}" in s.get("/")[1] and "test_rmse" in s.get("/api/team", token)[1]


# --- rejections: messages, nothing stored, the day's slot kept --------------------------
def test_bad_uploads_are_rejected_with_their_messages_and_nothing_is_stored(server, key, tmp_path):
    s = server("--daily-limit", "1", "--max-upload-mb", "0.2", "--attempts-per-hour", "100")
    token = signup(s.url, "Careful")
    good = submission(key, tmp_path / "good.txt").read_bytes()
    lines = good.decode().splitlines(keepends=True)
    first_block = [i for i, line in enumerate(lines) if line.endswith(":\n")]
    third = lines[first_block[2]].strip(":\n")

    def send(data: bytes, **headers):
        return s.post("/api/submissions", data, token, {"Content-Type": "application/octet-stream", **headers})

    bad_value = lines.copy()
    bad_value[first_block[2] + 3] = "abc\n"
    nan = lines.copy()
    nan[first_block[1] + 1] = "nan\n"
    short = lines[:-1]  # the last block one prediction short
    swapped = lines[first_block[1]:first_block[2]] + lines[first_block[0]:first_block[1]] + lines[first_block[2]:]
    big = good + b"3.000\n" * 40_000  # over 0.2 MB
    bomb = gzip.compress(good + b"\n" * 400_000)  # small as sent, over the cap unpacked
    gz = gzip.compress(good)
    cases = [
        ("".join(bad_value).encode(), 400, f"line {first_block[2] + 4}: .*'abc'.*movie block 3, '{third}:'"),
        ("".join(nan).encode(), 400, "'nan'.*movie block 2"),
        ("".join(short).encode(), 400, "movie block 40 .* expected .* as the qualifying set lists it"),
        ("".join(swapped).encode(), 400, "movie block 1 is .* expected"),
        (gz[: len(gz) // 2], 400, "truncated"),
        (b"\x1f\x8b\x07" + bytes(20), 400, "not a readable gzip"),  # an unknown method
        (big, 413, "cap"),
        (bomb, 413, "unpacks to more than"),
        (b"", 400, "0 movie blocks"),
    ]
    for data, status, pattern in cases:
        got, answer, _ = send(data)
        assert got == status, (pattern, answer)
        assert re.search(pattern, answer["detail"]), (pattern, answer["detail"])
    got, answer, _ = send(good, **{"X-Submission-SHA256": "0" * 64})
    assert got == 400 and "damaged" in answer["detail"]
    assert s.rows("select count(*) from submissions") == [(0,)]
    assert client.team(s.url, token)["left_today"] == 1  # none counted against the day
    got, answer, _ = send(gz, **{"X-Submission-SHA256": hashlib.sha256(gz).hexdigest()})
    assert got == 201 and answer["quiz_rmse"] == pytest.approx(score(submission(key, tmp_path / "g.txt"), key)["quiz_rmse"],
                                                                abs=1e-3)
    assert s.rows("select count(*) from submissions") == [(1,)]


def test_rate_limits_and_proof_of_work(server, key, tmp_path):
    s = server("--signups-per-hour", "2", "--attempts-per-hour", "3")
    token = signup(s.url, "One")
    signup(s.url, "Two")
    with pytest.raises(client.JudgeError, match="429.*sign-ups from this address"):
        signup(s.url, "Three")
    assert s.rows("select count(*) from teams") == [(2,)]

    ch = client._request(f"{s.url}/api/signup/challenge")
    payload = {"name": "Bot", "contact": "bot@example.org", "accept_rules": True, "challenge": ch["challenge"]}
    wrong = next(str(n) for n in range(10**6) if not client.pow_ok(ch["challenge"], str(n), ch["bits"]))
    status, answer, _ = s.post("/api/teams", json.dumps({**payload, "nonce": wrong}).encode(),
                               headers={"Content-Type": "application/json"})
    assert status == 400 and "does not solve" in answer["detail"]
    forged = ch["challenge"][:-4] + "0000"
    status, answer, _ = s.post("/api/teams", json.dumps({**payload, "challenge": forged, "nonce": "1"}).encode(),
                               headers={"Content-Type": "application/json"})
    assert status == 400 and "not issued by this server" in answer["detail"]
    status, answer, _ = s.post("/api/teams", json.dumps({**payload, "accept_rules": False, "nonce": "1"}).encode(),
                               headers={"Content-Type": "application/json"})
    assert status == 422 and "accept the contest's rules" in answer["detail"]

    for _ in range(3):  # rejected uploads count as attempts
        status, _, _ = s.post("/api/submissions", b"1:\nabc\n", token)
        assert status == 400
    status, answer, headers = s.post("/api/submissions", b"1:\nabc\n", token)
    assert status == 429 and "submission attempts by this team" in answer["detail"]
    assert 0 < int(headers["Retry-After"]) <= 3601


def test_a_spent_challenge_cannot_sign_up_twice(server):
    s = server()
    ch = client._request(f"{s.url}/api/signup/challenge")
    nonce = client.solve(ch["challenge"], ch["bits"])
    for name, want in (("First", 201), ("Second", 400)):
        status, answer, _ = s.post("/api/teams", json.dumps({"name": name, "contact": "x@example.org",
                                                             "accept_rules": True, "challenge": ch["challenge"],
                                                             "nonce": nonce}).encode(),
                                   headers={"Content-Type": "application/json"})
        assert status == want, answer
    assert "already used" in answer["detail"]
    with pytest.raises(client.JudgeError, match="409.*exists already"):
        signup(s.url, "first")  # names are unique regardless of case


def test_tokens_are_stored_hashed(server):
    s = server()
    token = signup(s.url, "Secretive")
    for table in store.metadata.sorted_tables:
        for row in s.rows(f"select * from {table.name}"):
            assert not any(isinstance(v, str) and token in v for v in row), table.name
    assert s.rows("select token_sha256 from teams") == [(hashlib.sha256(token.encode()).hexdigest(),)]
    assert s.get("/api/team", token)[0] == 200
    assert s.get("/api/team", token[:-1] + "x")[0] == 401
    assert s.get("/api/team")[0] == 401


def test_concurrent_submissions_of_one_team_count_once(server, key, tmp_path):
    s = server("--daily-limit", "1", "--attempts-per-hour", "100")
    token = signup(s.url, "Eager")
    subs = [submission(key, tmp_path / f"c{i}.txt", seed=i) for i in range(8)]
    results: list = [None] * 8
    go = threading.Barrier(8)

    def send(i):
        go.wait()
        try:
            results[i] = client.submit(s.url, subs[i], token)["id"]
        except client.JudgeError as e:
            results[i] = e.status

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r == 429 for r in results) == [False] + [True] * 7, results
    assert s.rows("select count(*) from submissions") == [(1,)]
    assert client.leaderboard(s.url)["rows"][0]["submissions"] == 1


def test_the_contest_window(server, key, tmp_path):
    s = server("--opens", "2999-01-01T00:00")
    token = signup(s.url, "Keen")
    with pytest.raises(client.JudgeError, match="403.*opens at 2999-01-01"):
        client.submit(s.url, submission(key, tmp_path / "k.txt"), token)
    assert client.contest(s.url)["open"] is False


def test_serve_refuses_another_answer_key(key, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert judge_cli.main(["create", "--answers", str(key), "--db", db]) == 0
    other = tmp_path / "other.csv"
    other.write_text(key.read_text().replace(",quiz\n", ",test\n", 1))
    from prizenet.judge import contest
    with pytest.raises(ValueError, match="made with another key"):
        contest.Judge(store.engine(db), *contest.load_key(other))
    assert judge_cli.main(["create", "--answers", str(key), "--db", db]) == 2  # one contest per database


# --- the team's tools ------------------------------------------------------------------
def test_submit_command_and_train_submit_to(server, tmp_path, monkeypatch, capsys):
    """``prizenet judge submit`` prints the score; ``train.py trainer.submit_to`` sends the
    run's submission and keeps the answer in judge.json."""
    from prizenet.data.synthetic import write_prize
    data = tmp_path / "prize"
    write_prize(data, 300, 60, 6000, seed=0, n_factors=2)
    (tmp_path / "srv").mkdir()
    s = Server(tmp_path / "srv", data / "answers.csv", "--daily-limit", "2")
    try:
        token = signup(s.url, "Runner")
        monkeypatch.setenv(client.TOKEN_ENV, token)
        out = tmp_path / "run"
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "data=netflix", f"data.root={data}",
                               f"data.cache_dir={tmp_path / 'cache'}", "model=svd", "trainer.n_epochs=2",
                               f"trainer.submit_to={s.url}", f"hydra.run.dir={out}", "trainer.progress=false"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        answer = json.loads((out / "judge.json").read_text())
        want = score(out / "submission.txt", data / "answers.csv")
        assert answer["quiz_rmse"] == pytest.approx(want["quiz_rmse"], abs=1e-12) and "test_rmse" not in answer
        assert "judged at" in proc.stderr + proc.stdout
        assert judge_cli.main(["submit", str(out / "submission.txt"), "--url", s.url]) == 0
        assert f"quiz RMSE {want['quiz_rmse']:.4f}" in capsys.readouterr().out
        assert judge_cli.main(["submit", str(out / "submission.txt"), "--url", s.url]) == 1  # the day's limit
        assert "429" in capsys.readouterr().err
    finally:
        s.stop()


def test_submit_to_is_checked_before_training(monkeypatch):
    from omegaconf import OmegaConf

    from prizenet.config import ConfigError, check_trainer
    tc = OmegaConf.load(ROOT / "conf" / "trainer" / "default.yaml")
    tc.pop("defaults")
    monkeypatch.delenv(client.TOKEN_ENV, raising=False)
    tc.submit_to = "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match=client.TOKEN_ENV):
        check_trainer(tc)
    tc.submit_to = "ftp://x"
    monkeypatch.setenv(client.TOKEN_ENV, "pz_x")
    with pytest.raises(ConfigError, match="trainer.submit_to"):
        check_trainer(tc)


def test_an_unreachable_judge_loses_nothing(tmp_path):
    from prizenet.run import send_to_judge
    run = tmp_path / "run"
    run.mkdir()
    (run / "submission.txt").write_text("1:\n3.0\n")
    os.environ.setdefault(client.TOKEN_ENV, "pz_unused")
    send_to_judge(f"http://127.0.0.1:{free_port()}", run, "note")
    assert "cannot be reached" in json.loads((run / "judge.json").read_text())["error"]
    assert (run / "submission.txt").exists()


# --- the pieces, in process ------------------------------------------------------------
def test_proof_of_work_costs_what_it_says():
    nonce = client.solve("abc", 12)
    assert client.pow_ok("abc", nonce, 12)
    assert int.from_bytes(hashlib.sha256(f"abc:{nonce}".encode()).digest(), "big") >> 244 == 0
    assert not all(client.pow_ok("abc", str(n), 12) for n in range(int(nonce)))  # not every nonce does
    assert client.pow_ok("abc", "anything", 0)


def test_parse_errors_name_the_movie_block(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1:\n3.0\n2:\n4.0\nx\n")
    from prizenet.data import read_submission
    with pytest.raises(DataFormatError, match=r"line 5: .*'x' \(in movie block 2, '2:'\)"):
        read_submission(path)


# --- the pages in a real browser ---------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def browser():
    """Debian's chromium, headless, driven by Playwright (dialogs recorded, never accepted)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright "
                                                                   "(pip install -e '.[browser]')")
    if not CHROMIUM.exists():
        pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
                    ".ci/run installs it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = b.new_page()
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        try:
            yield page
        finally:
            b.close()
    assert page.dialogs == []


def test_leaderboard_page_in_a_browser(server, browser, key, tmp_path):
    """The table as a reader sees it, a hostile team name shown as text and never run, the
    Prize's lines, the final ranking after the close."""
    page = browser
    s = server("--reference", "1.2", "--name", "Browser Prize")
    evil = "<img src=x onerror=alert(1)>"
    t1, t2 = signup(s.url, evil), signup(s.url, "Plain")
    client.submit(s.url, submission(key, tmp_path / "e.txt", 0.5, 0.9), t1)
    client.submit(s.url, submission(key, tmp_path / "p.txt", 0.7, 0.4, seed=1), t2)
    page.goto(s.url + "/")
    assert page.title() == "Browser Prize: leaderboard"
    rows = page.locator("#leaderboard tbody tr:not(.line)")
    assert rows.count() == 2
    lines = page.locator("#leaderboard tr.line").all_inner_texts()  # the Prize's lines in the sand
    assert lines == ["Grand prize: 10% better than the reference: RMSE 1.0800", "The reference: RMSE 1.2000"]
    assert rows.nth(0).locator("td").nth(1).inner_text() == evil  # shown as text
    assert page.locator("#leaderboard img").count() == 0
    headers = page.locator("#leaderboard thead th").all_inner_texts()
    assert headers[:3] == ["Rank", "Team", "Best quiz RMSE"] and "Test RMSE" not in headers
    judge_cli.main(["close", "--db", s.db])
    page.reload()
    headers = page.locator("#leaderboard thead th").all_inner_texts()
    assert "Test RMSE" in headers
    assert rows.nth(0).locator("td").nth(1).inner_text() == "Plain"  # better on the test half
    assert "final ranking" in page.locator("#status").inner_text()
    page.click("text=Rules and how to take part")
    assert "prizenet judge signup" in page.locator("body").inner_text()


def test_the_pages_hash_as_the_server_does(server, browser):
    """judge.js's SHA-256 and proof of work against hashlib's, across block boundaries."""
    s = server()
    browser.goto(s.url + "/signup")
    for text in ["", "abc", "a" * 55, "a" * 56, "a" * 64, "b" * 119, "é☃ challenge:17", "x" * 1000]:
        assert browser.evaluate("t => window.prizenetJudge.sha256(t)", text) == hashlib.sha256(text.encode()).hexdigest()
    ch = "1700000000.abcdef.0123"
    for bits in (0, 4, 8, 12):
        nonce = browser.evaluate("([c, b]) => window.prizenetJudge.solve(c, b)", [ch, bits])
        assert nonce == client.solve(ch, bits)


def test_sign_up_and_submit_in_a_browser(server, browser, key, tmp_path):
    """A team made on /signup (the browser solving a 14-bit proof of work), its token used on
    /team to upload a gzipped file and see its quiz RMSE, then a bad file's message."""
    page = browser
    s = server("--pow-bits", "14", "--reference", "1.1", "--daily-limit", "2")
    page.goto(s.url + "/")
    page.click("text=Sign up")
    page.fill("input[name=name]", "Navigateurs")
    page.fill("input[name=contact]", "nav@example.org")
    page.fill("textarea[name=members]", "Ann\nBob\n")
    page.check("input[name=accept]")
    page.click("button[type=submit]")
    page.wait_for_selector("#done:not([hidden])", timeout=60_000)
    token = page.locator("#token").inner_text()
    assert token.startswith("pz_") and "Navigateurs" in page.locator("#message").inner_text()
    assert s.rows("select name, token_sha256 from teams") == [("Navigateurs", hashlib.sha256(token.encode()).hexdigest())]
    assert s.rows("select name from members order by id") == [("Ann",), ("Bob",)]

    page.click("text=your team's page")
    page.fill("input[name=token]", token)
    page.click("#login button")
    page.wait_for_selector("#team:not([hidden])")
    assert page.locator("#team-name").inner_text() == "Navigateurs"
    sub = submission(key, tmp_path / "nav.txt", 0.6, 0.6)
    gz = tmp_path / "nav.txt.gz"
    gz.write_bytes(gzip.compress(sub.read_bytes()))
    want = score(sub, key, 1.1)
    page.set_input_files("input[name=file]", str(gz))
    page.fill("input[name=note]", "from the browser, été")
    page.click("#upload button")
    page.wait_for_selector("#submissions tbody tr")
    assert f"quiz RMSE {want['quiz_rmse']:.4f} (+{want['improvement_pct']:.2f}% over 1.1000)" in \
        page.locator("#message").inner_text()
    cells = page.locator("#submissions tbody tr td").all_inner_texts()
    assert cells[2] == f"{want['quiz_rmse']:.4f}" and cells[3] == "from the browser, été"
    assert s.rows("select sha256 from submissions") == [(hashlib.sha256(gz.read_bytes()).hexdigest(),)]
    assert f"{want['test_rmse']:.4f}" not in page.content()

    bad = tmp_path / "bad.txt"
    bad.write_text(sub.read_text().replace("\n", "\nxyz\n", 3))
    page.set_input_files("input[name=file]", str(bad))
    page.click("#upload button")
    page.wait_for_selector("#message.error")
    assert "400" in page.locator("#message").inner_text() and "movie block" in page.locator("#message").inner_text()
    assert s.rows("select count(*) from submissions") == [(1,)]
    page.reload()  # the token kept for the session
    page.wait_for_selector("#team:not([hidden])")
    assert page.locator("#submissions tbody tr").count() == 1
