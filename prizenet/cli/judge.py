"""The judging service (prizenet.judge): run it, organise the contest, take part.

Organisers (on the server's machine; the database URL as SQLAlchemy takes it):

    prizenet judge create --answers answers.csv --db sqlite:///contest.db --name "My Prize" \\
        --reference 0.9514 --closes 2027-06-01T00:00 [--daily-limit 1 --pow-bits 20 ...]
    prizenet judge serve --answers answers.csv --db sqlite:///contest.db [--host 127.0.0.1 --port 8000]
    prizenet judge close --db sqlite:///contest.db          # submissions stop; the final ranking is public
    prizenet judge export --db sqlite:///contest.db --out results.csv     # every submission, both scores

``serve`` creates the contest with the defaults when the database holds none, so
``prizenet judge serve --answers KEY`` alone runs one (SQLite in ./contest.db).

Teams (any machine; the token from $PRIZENET_JUDGE_TOKEN):

    prizenet judge signup --url URL --name TEAM --contact MAIL --accept-rules [--member NAME ...]
    prizenet judge submit submission.txt --url URL [--note "svd++ 200 factors"]
    prizenet judge leaderboard --url URL
    prizenet judge team --url URL
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from prizenet.data.submission import CINEMATCH_QUIZ_RMSE
from prizenet.judge import client

DEFAULT_DB = "sqlite:///contest.db"


def _when(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date and time such as 2027-06-01T00:00 (UTC), got {text!r}") \
            from None
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def _reference(text: str) -> float:
    return CINEMATCH_QUIZ_RMSE if text.lower() == "cinematch" else float(text)


def _contest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="prizenet contest")
    p.add_argument("--rules", type=argparse.FileType("r"), help="a text file of the rules (default: the Prize's, "
                                                                 "in prizenet.judge.contest.DEFAULT_RULES)")
    p.add_argument("--reference", type=_reference, default=None,
                   help="the RMSE improvements are counted against ('cinematch': 0.9514, Netflix data only)")
    p.add_argument("--target-pct", type=float, default=10.0,
                   help="the leaderboard's grand-prize line: this %% better than the reference (the Prize's 10)")
    p.add_argument("--opens", type=_when, help="UTC, ISO 8601; default: open now")
    p.add_argument("--closes", type=_when, help="UTC; submissions stop then (default: when the organiser closes)")
    p.add_argument("--daily-limit", type=int, default=1, help="scored submissions per team per UTC day")
    p.add_argument("--max-upload-mb", type=float, default=64.0, help="cap on an upload, as sent and unpacked")
    p.add_argument("--pow-bits", type=int, default=20, help="sign-up proof of work: leading zero bits of SHA-256")
    p.add_argument("--signups-per-hour", type=int, default=5, help="per address (0: no limit)")
    p.add_argument("--attempts-per-hour", type=int, default=20,
                   help="submission attempts per team, scored or not (3x that per address; 0: no limit)")


def _create(engine, args) -> dict:
    from prizenet.judge import contest
    return contest.create(
        engine, args.answers, args.name, rules=args.rules.read() if args.rules else contest.DEFAULT_RULES,
        reference_rmse=args.reference, target_pct=args.target_pct, opens_at=args.opens, closes_at=args.closes,
        daily_limit=args.daily_limit,
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)), pow_bits=args.pow_bits,
        signups_per_hour=args.signups_per_hour, attempts_per_hour=args.attempts_per_hour)


def _server_modules():
    try:
        from prizenet.judge import contest, service, store
    except ImportError as e:
        raise SystemExit(f"prizenet judge: the server needs the judge extra: pip install 'prizenet[judge]' ({e})")
    return contest, service, store


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="prizenet judge", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the service")
    p.add_argument("--answers", required=True, help="the answer key (CSV: movie_id,customer_id,date,rating,subset)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--scorers", type=int, default=None, help="uploads scored at once (default: the CPU count)")
    p.add_argument("--forwarded-allow-ips", default=None,
                   help="reverse proxies trusted to name the client in X-Forwarded-For (default: none)")
    _contest_args(p)

    p = sub.add_parser("create", help="create the contest in a new database")
    p.add_argument("--answers", required=True)
    p.add_argument("--db", default=DEFAULT_DB)
    _contest_args(p)

    p = sub.add_parser("close", help="close the contest: the final ranking by test RMSE is published")
    p.add_argument("--db", default=DEFAULT_DB)

    p = sub.add_parser("export", help="every submission with both scores, as CSV")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--out", required=True)

    p = sub.add_parser("signup", help="sign a team up; prints its token once")
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--contact", required=True)
    p.add_argument("--member", action="append", default=[], help="a member's name (repeat)")
    p.add_argument("--accept-rules", action="store_true", help="accept the rules shown at URL/rules")

    p = sub.add_parser("submit", help="send a submission; prints its quiz score")
    p.add_argument("file")
    p.add_argument("--url", required=True)
    p.add_argument("--note", default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("leaderboard", help="print the leaderboard")
    p.add_argument("--url", required=True)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("team", help="the team's own submissions")
    p.add_argument("--url", required=True)

    args = ap.parse_args(argv)
    try:
        return _run(args)
    except client.JudgeError as e:
        print(f"prizenet judge: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"prizenet judge: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command in ("serve", "create", "close", "export"):
        contest, service, store = _server_modules()
        engine = store.engine(args.db)
        if args.command == "create":
            made = _create(engine, args)
            print(f"created {made['name']!r} in {args.db}: {made['n_predictions']:,} predictions, "
                  f"answer key sha256 {made['key_sha256']}")
        elif args.command == "serve":
            key, sha = contest.load_key(args.answers)
            with engine.connect() as conn:
                exists = conn.execute(store.contest.select()).first() is not None
            if not exists:
                _create(engine, args)
                print(f"created the contest {args.name!r} in {args.db}", file=sys.stderr)
            judge = contest.Judge(engine, key, sha)
            if exists:
                c = judge.public()
                print(f"serving the contest {c['name']!r} of {args.db} (its settings were fixed when it was made; "
                      f"the contest options given here apply to a new database only)", file=sys.stderr)
            service.serve(judge, args.host, args.port, args.scorers, args.forwarded_allow_ips)
        elif args.command == "close":
            print(f"closed at {contest.iso(contest.close(engine))}")
        else:
            n = contest.export(engine, args.out)
            print(f"{n} submissions written to {args.out}")
        return 0
    if args.command == "signup":
        if not args.accept_rules:
            print(f"prizenet judge: read the rules at {args.url.rstrip('/')}/rules and pass --accept-rules",
                  file=sys.stderr)
            return 2
        made = client.signup(args.url, args.name, args.contact, True, [{"name": m} for m in args.member])
        print(f"team {made['team']!r} signed up. Its token, shown this once; keep it secret:\n\n"
              f"    export {client.TOKEN_ENV}={made['token']}\n")
        return 0
    if args.command == "submit":
        r = client.submit(args.url, args.file, note=args.note)
        if args.json:
            print(json.dumps(r))
        else:
            print(_describe(r))
        return 0
    if args.command == "leaderboard":
        board = client.leaderboard(args.url)
        if args.json:
            print(json.dumps(board))
            return 0
        by = "test" if board["final"] else "quiz"
        print(f"{board['contest']}: {'final ranking by test RMSE' if board['final'] else 'ranked by best quiz RMSE'}")
        for r in board["rows"]:
            imp = "" if r["improvement_pct"] is None else f"  {r['improvement_pct']:+.2f}%"
            print(f"{r['rank']:>4}  {r['team']:<40} {r[f'{by}_rmse']:.4f}{imp}  ({r['submissions']} submissions)")
        return 0
    view = client.team(args.url)
    print(f"{view['team']}: {len(view['submissions'])} submissions, {view['left_today']} left today")
    for s in view["submissions"]:
        print(f"  #{s['id']}  {s['received_at']}  quiz {s['quiz_rmse']:.4f}  {s['note'] or ''}")
    return 0


def _describe(r: dict) -> str:
    imp = "" if r["improvement_pct"] is None else f" ({r['improvement_pct']:+.2f}% over {r['reference_rmse']:.4f})"
    clipped = f"; {r['clipped']:,} predictions clipped to the rating scale" if r["clipped"] else ""
    return (f"submission #{r['id']} of {r['team']!r}: quiz RMSE {r['quiz_rmse']:.4f}{imp}{clipped}; "
            f"{r['left_today']} scored submission(s) left today")


if __name__ == "__main__":
    sys.exit(main())
