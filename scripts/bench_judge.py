"""A bounded load test of the judging service on the loopback address, and the time to
score a Netflix-size submission.

    python scripts/bench_judge.py [--root ../shared/data/prize/ml1m-half] [--teams 40] [--rounds 3]
        [--readers 10] [--markdown] [--skip-netflix]

* load: ``prizenet judge serve`` in its own process (SQLite in a temporary folder), its key
  over ml1m-half's qualifying pairs (the real answers are withheld, so the ratings and the
  quiz/test halves of this key are drawn at random: the scores mean nothing, the work is the
  same). ``--teams`` teams sign up (solving the proof of work), then all submit at once,
  each ``--rounds`` full-size submissions one after another (the daily limit set to
  ``--rounds``) while ``--readers`` readers fetch the leaderboard (JSON and HTML in turn)
  until the last submission is answered; then every team sends one more, which the limit
  must refuse. Reported: requests per second, p50/p99 latency of each kind, the server's
  peak memory (VmHWM), and that the database holds exactly the accepted submissions.
* netflix: a key of the Prize's qualifying size (2,817,131 pairs in 17,770 movie blocks,
  Zipf-sized) and a submission for it: the in-process read + score, then the same upload
  over HTTP, plain (~17 MB) and gzipped.

The client threads share the machine with the server: on 2 cores the numbers are a floor.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prizenet.data.netflix import read_pairs  # noqa: E402
from prizenet.data.submission import judge as judge_arrays  # noqa: E402
from prizenet.data.submission import write_answers, write_submission  # noqa: E402
from prizenet.judge import client, contest, store  # noqa: E402
from prizenet.judge.service import spawn  # noqa: E402

NETFLIX_QUALIFYING = 2_817_131


def random_key(path: Path, movie: np.ndarray, seed: int = 0) -> None:
    """An answer key over these pairs with random ratings and halves (not the real answers)."""
    rng = np.random.default_rng(seed)
    n = len(movie)
    write_answers(path, movie, rng.integers(1, 2_649_430, n), np.full(n, "2005-12-31"), rng.integers(1, 6, n),
                  rng.integers(0, 2, n))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def load_test(root: Path, teams: int, rounds: int, readers: int, work: Path, db: str | None = None) -> dict:
    qual = read_pairs(root / "qualifying.txt", "qual")
    key = work / "key.csv"
    random_key(key, qual["movie"])
    rng = np.random.default_rng(1)
    files = []
    for t in range(teams * (rounds + 1)):
        f = work / f"sub{t}.txt"
        write_submission(f, qual["movie"], rng.uniform(1, 5, len(qual["movie"])))
        files.append(f)
    if db:  # an existing database (PostgreSQL): emptied first
        eng = store.engine(db)
        store.metadata.drop_all(eng)
        eng.dispose()
    db = db or f"sqlite:///{work / 'contest.db'}"
    proc, url = spawn(key, db, options=("--daily-limit", str(rounds), "--pow-bits", "16", "--signups-per-hour", "0",
                                        "--attempts-per-hour", "0"), log=work / "server.log")
    try:
        t0 = time.perf_counter()
        tokens = [client.signup(url, f"team{t}", f"t{t}@example.org", True)["token"] for t in range(teams)]
        signup_s = (time.perf_counter() - t0) / teams
        submit_lat, read_lat, errors, accepted = [], [], [], []
        lock = threading.Lock()
        done = threading.Event()
        go = threading.Barrier(teams + readers)

        def submitter(t: int) -> None:
            go.wait()
            for r in range(rounds):
                s = time.perf_counter()
                try:
                    answer = client.submit(url, files[t * rounds + r], tokens[t])
                    with lock:
                        accepted.append(answer["id"])
                except client.JudgeError as e:
                    with lock:
                        errors.append(str(e))
                with lock:
                    submit_lat.append(time.perf_counter() - s)

        def reader() -> None:
            go.wait()
            k = 0
            while not done.is_set():
                s = time.perf_counter()
                try:
                    if k % 2:
                        client._request(f"{url}/api/leaderboard")
                    else:
                        client._request(f"{url}/", raw=True)
                except client.JudgeError as e:
                    with lock:
                        errors.append(str(e))
                with lock:
                    read_lat.append(time.perf_counter() - s)
                k += 1

        subs = [threading.Thread(target=submitter, args=(t,)) for t in range(teams)]
        reads = [threading.Thread(target=reader) for _ in range(readers)]
        for th in subs + reads:
            th.start()
        start = time.perf_counter()
        for th in subs:
            th.join()
        wall = time.perf_counter() - start
        done.set()
        for th in reads:
            th.join()
        # One more each: the daily limit must refuse every one.
        refused = 0
        for t in range(teams):
            try:
                client.submit(url, files[teams * rounds + t], tokens[t])
            except client.JudgeError as e:
                refused += e.status == 429
        board = client.leaderboard(url)
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    eng = store.engine(db)
    with eng.connect() as conn:
        stored = conn.execute(sa.text("select id from submissions order by id")).all()
        per_team = conn.execute(sa.text("select max(n) from (select count(*) n from submissions group by team_id) c")
                                ).one()
    eng.dispose()
    stored_ids = [i for (i,) in stored]
    return {
        "db": db.split(":")[0], "teams": teams, "rounds": rounds, "readers": readers,
        "predictions": int(len(qual["movie"])),
        "bytes": files[0].stat().st_size, "signup_s": signup_s, "wall_s": wall,
        "submissions": len(submit_lat), "reads": len(read_lat), "errors": errors[:5], "n_errors": len(errors),
        "submit_rps": len(submit_lat) / wall, "read_rps": len(read_lat) / wall,
        "submit_p50_ms": pct(submit_lat, 50), "submit_p99_ms": pct(submit_lat, 99),
        "read_p50_ms": pct(read_lat, 50), "read_p99_ms": pct(read_lat, 99),
        "accepted": len(accepted), "stored": len(stored_ids), "lost": len(set(accepted) - set(stored_ids)),
        "double": len(stored_ids) - len(set(stored_ids)) + len(set(stored_ids) - set(accepted)),
        "over_limit_refused": refused, "max_per_team": per_team[0],
        "board_rows": len(board["rows"]), "board_counts": sum(r["submissions"] for r in board["rows"]),
        "server_peak_rss_mb": rss,
    }


def netflix_size(work: Path) -> dict:
    """A Prize-size key and submission: in-process scoring, then over HTTP."""
    rng = np.random.default_rng(2)
    counts = rng.zipf(1.3, 17_770).astype(np.float64)
    counts = np.maximum(1, np.round(counts / counts.sum() * NETFLIX_QUALIFYING)).astype(np.int64)
    counts[np.argmax(counts)] += NETFLIX_QUALIFYING - counts.sum()
    movie = np.repeat(np.arange(1, 17_771), counts)
    key_path = work / "netflix_key.csv"
    random_key(key_path, movie, 3)
    sub = work / "netflix_sub.txt"
    write_submission(sub, movie, rng.uniform(1, 5, len(movie)))
    gz = work / "netflix_sub.txt.gz"
    gz.write_bytes(gzip.compress(sub.read_bytes(), 6))
    t = time.perf_counter()
    key, sha = contest.load_key(key_path)
    key_s = time.perf_counter() - t
    db = f"sqlite:///{work / 'netflix.db'}"
    eng = store.engine(db)
    contest.create(eng, key_path, daily_limit=10, signups_per_hour=0, max_upload_bytes=64 << 20, pow_bits=8)
    j = contest.Judge(eng, key, sha)
    data = sub.read_bytes()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        movie_got, pred = j.read_upload(data, 64 << 20)
        judge_arrays(movie_got, pred, key)
        times.append(time.perf_counter() - t)
    proc, url = spawn(key_path, db, log=work / "netflix_server.log", timeout_s=120)
    http = {}
    try:
        token = client.signup(url, "big", "big@example.org", True)["token"]
        for name, path in (("plain", sub), ("gzip", gz)):
            t = time.perf_counter()
            client.submit(url, path, token)
            http[name] = time.perf_counter() - t
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"predictions": int(len(movie)), "blocks": 17_770, "bytes": len(data), "gzip_bytes": gz.stat().st_size,
            "load_key_s": key_s, "score_s": statistics.median(times), "http_s": http,
            "server_peak_rss_mb": rss}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "prize" / "ml1m-half")
    ap.add_argument("--teams", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--readers", type=int, default=10)
    ap.add_argument("--skip-netflix", action="store_true")
    ap.add_argument("--db", default=None, help="the load test's database URL (default: SQLite in a temporary "
                                                "folder); an existing PostgreSQL database is emptied first")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    if not (args.root / "qualifying.txt").exists():
        print(f"error: {args.root}/qualifying.txt not found (--root: a Prize-layout folder)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        load = load_test(args.root, args.teams, args.rounds, args.readers, work, args.db)
        big = None if args.skip_netflix else netflix_size(work)
    print(json.dumps({"load": load, "netflix": big, "machine": platform.platform()}, indent=1))
    if args.markdown:
        L = load
        print(f"\n| what | value |\n|---|---:|\n"
              f"| database | {L['db']} |\n"
              f"| teams x submissions each, readers | {L['teams']} x {L['rounds']}, {L['readers']} |\n"
              f"| submission | {L['predictions']:,} predictions, {L['bytes']:,} bytes |\n"
              f"| wall time of the submissions | {L['wall_s']:.1f} s |\n"
              f"| submissions/s, p50 / p99 latency | {L['submit_rps']:.1f}, {L['submit_p50_ms']:.0f} / "
              f"{L['submit_p99_ms']:.0f} ms |\n"
              f"| leaderboard reads/s, p50 / p99 latency | {L['read_rps']:.1f}, {L['read_p50_ms']:.0f} / "
              f"{L['read_p99_ms']:.0f} ms |\n"
              f"| accepted, stored, lost, double-counted | {L['accepted']}, {L['stored']}, {L['lost']}, "
              f"{L['double']} |\n"
              f"| over the limit: refused of {L['teams']} | {L['over_limit_refused']} |\n"
              f"| errors during the load | {L['n_errors']} |\n"
              f"| sign-up (proof of work, 16 bits) | {L['signup_s']:.2f} s |\n"
              f"| server peak RSS | {L['server_peak_rss_mb']:.0f} MB |")
        if big:
            print(f"\n| Netflix-size submission ({big['predictions']:,} predictions, {big['bytes'] / 1e6:.1f} MB, "
                  f"gzip {big['gzip_bytes'] / 1e6:.1f} MB) | seconds |\n|---|---:|\n"
                  f"| load the answer key (server start) | {big['load_key_s']:.2f} |\n"
                  f"| read + validate + score, in process (median of 3) | {big['score_s']:.2f} |\n"
                  + "".join(f"| upload to answer over HTTP, {k.replace('_', ', ')} | {v:.2f} |\n"
                            for k, v in big["http_s"].items()) +
                  f"| server peak RSS | {big['server_peak_rss_mb']:.0f} MB |")
    bad = load["lost"] or load["double"] or load["over_limit_refused"] != load["teams"] \
        or load["stored"] != load["teams"] * load["rounds"] or load["n_errors"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
