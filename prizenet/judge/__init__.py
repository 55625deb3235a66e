"""The Prize's judging service: teams sign up, send qualifying predictions, see their quiz
RMSE on a public leaderboard; the test RMSE is kept until the organiser closes the contest.

    prizenet judge serve --answers answers.csv --db sqlite:///contest.db     # the service
    prizenet judge signup --url http://HOST:8000 --name TEAM --contact MAIL --accept-rules
    prizenet judge submit submission.txt --url http://HOST:8000               # token: $PRIZENET_JUDGE_TOKEN
    prizenet judge close --db sqlite:///contest.db                            # the final ranking, by test RMSE

- :mod:`.store`: the database (SQLAlchemy Core; SQLite by default, PostgreSQL by URL):
  the contest, teams, members, every scored submission, rate-limit events.
- :mod:`.contest`: the rules in code: proof of work, tokens, rate limits, the daily limit,
  reading and scoring an upload, the leaderboard and the final ranking.
- :mod:`.service`: the HTTP service (FastAPI on uvicorn), a thin layer over :mod:`.contest`.
- :mod:`.client`: what teams run (standard library only): sign up, submit, read the board.

The server needs the ``judge`` extra (``pip install 'prizenet[judge]'``); the client does not.
"""
