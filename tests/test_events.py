"""A signed-in tab's event stream (`GET /events`, Server-Sent Events): what ended before the tab
listened, each run that ends while it listens, nothing of anyone else's, an end once nothing is
going, and a bound on how many one process serves (each holds a server thread)."""
import json
import threading
import time

import sqlalchemy as sa

from tests.factories import add_analysis
from webapp.analyses import events
from webapp.extensions import db
from webapp.jobs import news
from webapp.models import Run, RunStatus


def said(response) -> list[tuple[str, dict]]:
    """The stream read to its end: (event, data) of each event with a name."""
    text = b"".join(response.response).decode()
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"]) if lines.get("data") else {}))
    return found


def finish(app, public_id: str) -> None:
    """What the pipeline does when a run ends: commit, then tell."""
    with app.app_context():
        run = db.session.scalar(sa.select(Run).where(Run.public_id == public_id))
        run.status = RunStatus.DONE
        told = [news.Finished(run.user_id, run.id, run.public_id, "done")]
        db.session.commit()
        news.tell(told)


def test_runs_that_ended_before_the_tab_listened_are_said_first_and_the_stream_ends_idle(app, client, auth,
                                                                                         monkeypatch):
    monkeypatch.setattr(events, "IDLE_SECONDS", 0.2)
    auth.signup()
    ended = add_analysis(app, status=RunStatus.DONE)
    gone = add_analysis(app, status=RunStatus.FAILED, error="no")
    response = client.get(f"/events?watch={ended.public_id},{gone.public_id}")
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert sorted(said(response), key=str) == sorted([
        ("finished", {"id": ended.public_id, "status": "done"}),
        ("finished", {"id": gone.public_id, "status": "failed"}), ("idle", {})], key=str)


def test_a_run_that_ends_while_the_tab_listens_is_said_at_once(app, client, auth, monkeypatch):
    monkeypatch.setattr(events, "IDLE_SECONDS", 0.2)
    monkeypatch.setattr(events, "CHECK_SECONDS", 60)  # only the news can say it in time
    auth.signup()
    going = add_analysis(app, status=RunStatus.RUNNING)
    response = client.get(f"/events?watch={going.public_id}", buffered=False)
    stream = iter(response.response)
    assert next(stream).startswith(b"retry:")
    threading.Timer(0.3, finish, args=(app, going.public_id)).start()
    rest = b"".join(stream).decode()
    assert f'"id": "{going.public_id}", "status": "done"' in rest and rest.endswith("event: idle\ndata: \n\n")


def test_another_accounts_run_is_said_to_be_gone_exactly_as_one_that_never_was(app, client, auth, monkeypatch):
    monkeypatch.setattr(events, "IDLE_SECONDS", 0.2)
    auth.signup()
    theirs = add_analysis(app, status=RunStatus.DONE, user_email="eve@example.com")
    nobody = "0" * 32
    response = client.get(f"/events?watch={theirs.public_id},{nobody}")
    assert said(response) == [("finished", {"id": theirs.public_id, "status": "deleted"}),
                              ("finished", {"id": nobody, "status": "deleted"}), ("idle", {})]


def test_a_head_request_opens_no_stream_and_keeps_no_place(make_app, auth_factory):
    app = make_app(EVENT_STREAMS=1)
    client, auth = auth_factory(app)
    auth.signup()
    for _ in range(3):
        assert client.head("/events").status_code == 200
    stream = client.get("/events", buffered=False)
    assert stream.status_code == 200
    stream.close()


def test_one_account_holds_two_streams_in_a_process_and_a_third_tab_polls(app, client, auth):
    auth.signup()
    going = add_analysis(app, status=RunStatus.RUNNING)
    tabs = [client.get(f"/events?watch={going.public_id}", buffered=False) for _ in range(2)]
    for tab in tabs:
        next(iter(tab.response))
    assert client.get("/events").status_code == 503
    for tab in reversed(tabs):  # (both in this thread: the last opened closes first)
        tab.close()


def test_a_process_serves_at_most_event_streams_at_once_and_refuses_the_next_with_503(make_app, auth_factory):
    app = make_app(EVENT_STREAMS=1)
    client, auth = auth_factory(app)
    auth.signup()
    going = add_analysis(app, status=RunStatus.RUNNING)
    first = client.get(f"/events?watch={going.public_id}", buffered=False)
    next(iter(first.response))  # open, holding its place
    refused = client.get("/events")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    first.close()  # the tab went: its place is given back
    again = client.get("/events", buffered=False)
    assert again.status_code == 200
    again.close()


def test_the_stream_is_for_signed_in_tabs_only(client):
    response = client.get("/events")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_run_the_rows_and_the_news_both_tell_of_is_said_once(app, client, auth, monkeypatch):
    """The periodic read of the rows may see a run ended before its news comes: one event."""
    monkeypatch.setattr(events, "IDLE_SECONDS", 0.5)
    monkeypatch.setattr(events, "CHECK_SECONDS", 0.05)
    auth.signup()
    going = add_analysis(app, status=RunStatus.RUNNING)
    real_tell = news.tell

    def late_tell(items):  # committed now, told a little later (another process's, say)
        time.sleep(0.3)
        real_tell(items)

    monkeypatch.setattr(news, "tell", late_tell)
    response = client.get(f"/events?watch={going.public_id}", buffered=False)
    stream = iter(response.response)
    next(stream)
    threading.Timer(0.2, finish, args=(app, going.public_id)).start()
    rest = b"".join(stream).decode()
    assert rest.count(going.public_id) == 1, rest
