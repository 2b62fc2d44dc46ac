"""A history of any size: the kept counts stay right (checked against the detections after
random uploads, retries and deletes), the migration backfills them, and every page query is
served by an index, never by a scan of the user's detections or a sort of the whole history."""
import re
import random
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy.orm import lazyload

from tests import factories
from tests.helpers import ApiActions, csrf_from, delete_photo_elsewhere
from tests.images import encode, sample
from webapp.analyses import listing, lookups, removal
from webapp.library import counts
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.models import Run, RunLabel, Photo, User, UserLabel


@pytest.fixture
def busy_app(make_app):
    """Random weights at confidence 0: every photo gets many boxes of many classes."""
    return make_app(YOLO_CONF=0.0, YOLO_STORE_FLOOR=0.0)


VOCABULARY = ("person", "dog", "cat", "car", "bus", "tie", "cup", "bird")


def test_counts_match_the_detections_after_random_uploads_retries_and_deletes(busy_app):
    """Uploads through the real pipeline (random weights: many boxes, one class) mixed with rows
    of many labels (made as the pipeline makes them), deletes and retries through the API."""
    rng = random.Random(7)
    users = [ApiActions(busy_app.test_client()).user(f"u{i}@example.com") for i in range(2)]
    for _ in range(40):
        api, email = rng.choice(list(zip(users, ("u0@example.com", "u1@example.com"), strict=True)))
        action = rng.choice(["upload", "rows", "rows", "delete", "retry"])
        mine = api.get("/api/v1/analyses?per_page=100").json["items"]
        if action == "upload":
            photo = encode(sample(rng.randint(64, 320), rng.randint(64, 320)), "PNG")
            api.upload(("p.png", photo), conf=f"{rng.choice([0.0, 0.01])}", query="?wait=true")
        elif action == "rows":
            labels = [(rng.choice(VOCABULARY), rng.random()) for _ in range(rng.randint(0, 6))]
            factories.add_analysis(busy_app, status=rng.choice(["done", "done", "failed"]), labels=labels,
                                   user_email=email, conf=rng.choice([0.25, 0.5]))
        elif action == "delete" and mine:
            assert api.delete(f"/api/v1/analyses/{rng.choice(mine)['id']}").status_code == 204
        elif action == "retry":
            for item in mine:
                if item["status"] == "failed":
                    api.post(f"/api/v1/analyses/{item['id']}/retry")
    with busy_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RunLabel)) > 10
        assert counts.check_counts() == []
    for api in users:
        listed = api.get("/api/v1/analyses?per_page=100").json
        assert listed["total"] == len(listed["items"])


def test_check_counts_reports_a_difference_and_fix_rebuilds(app):
    with app.app_context():
        owner = factories.user()
        factories.analysis(owner, labels=[("dog", 0.9), ("dog", 0.8), ("cat", 0.1)])
        db.session.execute(sa.update(UserLabel).values(photos=5))
        db.session.commit()
    runner = app.test_cli_runner()
    broken = runner.invoke(args=["check-counts"])
    assert broken.exit_code == 1 and "label 'dog': kept 5 photos, analyses say 1" in broken.output
    assert runner.invoke(args=["check-counts", "--fix"]).exit_code == 0
    assert runner.invoke(args=["check-counts"]).output.strip() == "The kept counts match the detections."


def test_a_deleted_user_takes_every_count_along(app):
    with app.app_context():
        owner = factories.user()
        factories.analysis(owner, labels=[("dog", 0.9)])
        db.session.delete(owner)
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserLabel)) == 0
        assert counts.check_counts() == []


SEED = """
INSERT INTO "user" (id, email, password_hash, created_at) VALUES (1, 'a@example.com', 'x', '2026-01-01 00:00:00+00');
INSERT INTO analysis (id, public_id, user_id, original_filename, original_path, width, height, sha256, status,
  model_name, conf, iou, imgsz, created_at, attempts) VALUES
  (1, 'a1', 1, 'p', '1/a1/o.jpg', 1, 1, 'x', 'done', 'm', 0.5, 0.7, 640, '2026-01-02 00:00:00+00', 1),
  (2, 'a2', 1, 'p', '1/a2/o.jpg', 1, 1, 'x', 'done', 'm', 0.25, 0.7, 640, '2026-01-03 00:00:00+00', 1),
  (3, 'a3', 1, 'p', '1/a3/o.jpg', 1, 1, 'x', 'pending', 'm', 0.25, 0.7, 640, '2026-01-04 00:00:00+00', 0);
INSERT INTO detection (analysis_id, class_id, label, confidence, x1, y1, x2, y2) VALUES
  (1, 16, 'dog', 0.9, 0, 0, 1, 1), (1, 16, 'dog', 0.6, 0, 0, 1, 1), (1, 0, 'person', 0.3, 0, 0, 1, 1),
  (2, 0, 'person', 0.3, 0, 0, 1, 1), (2, 16, 'dog', 0.26, 0, 0, 1, 1), (3, 15, 'cat', 0.9, 0, 0, 1, 1);
"""


def kept(app) -> dict:
    with app.app_context():
        return {
            "labels": sorted(tuple(r) for r in db.session.execute(
                sa.select(RunLabel.run_id, RunLabel.label, RunLabel.count))),
            "users": sorted(tuple(r) for r in db.session.execute(sa.select(UserLabel.label, UserLabel.photos))),
            "photos": db.session.scalar(sa.text('SELECT photos FROM "user"')),
            "problems": counts.check_counts(),
        }


def test_the_migration_backfills_the_counts_and_round_trips_with_data(make_app):
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade(revision="0003")
        for statement in filter(str.strip, SEED.split(";")):
            db.session.execute(sa.text(statement))
        db.session.commit()
        upgrade()
    expected = {"labels": [(1, "dog", 2), (2, "dog", 1), (2, "person", 1)],
                "users": [("dog", 2), ("person", 1)], "photos": 3, "problems": []}
    assert kept(app) == expected
    with app.app_context():
        downgrade(revision="0003")
        assert not {"analysis_label", "user_label"} & set(sa.inspect(db.engine).get_table_names())
        upgrade()
    assert kept(app) == expected


# ---- the plans: each query of a page on the index meant for it ----

def executed_plans(app, query) -> list[tuple[str, str]]:
    """Run `query`, then EXPLAIN each statement it sent, with the same parameters. PostgreSQL
    plans with fresh statistics and sequential scans off: on these tiny tables it would otherwise
    read them whole, as it never would at 100,000 photos (bench/gallery_scale.py shows what it
    does there), and choose among indexes by whether autovacuum had analysed them yet."""
    sent = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", capture)
        try:
            query()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", capture)
        plans = []
        with db.engine.connect() as conn:
            if db.engine.dialect.name != "sqlite":  # statistics now, not whenever autovacuum gets to it
                conn.exec_driver_sql("ANALYZE")
            for statement, parameters in sent:
                if db.engine.dialect.name == "sqlite":
                    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                    plans.append((statement, "\n".join(r[-1] for r in rows)))
                else:
                    conn.exec_driver_sql("SET enable_seqscan = off")
                    rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                                                + statement, parameters).all()
                    plans.append((statement, "\n".join(r[0] for r in rows)))
        return plans


@pytest.fixture
def seeded(app):
    with app.app_context():
        owner = factories.user()
        for i in range(30):
            factories.analysis(owner, labels=[("dog", 0.9), ("person", 0.8)] if i % 3 else [("cat", 0.9)])
        first = listing.page(owner, per_page=5)
        return owner.id, first.next_cursor, [a.id for a in first.items]


def owner(user_id):
    return db.session.get(User, user_id)


BY_UPLOAD = listing.filters(by_upload=True)
PAGE_QUERIES = {  # by date taken (the default), then by upload time
    "first page": (lambda u, c: listing.page(owner(u), per_page=5), "ix_analysis_user_shown_taken"),
    "scroll": (lambda u, c: listing.page(owner(u), cursor=c, per_page=5), "ix_analysis_user_shown_taken"),
    "oldest first": (lambda u, c: listing.page(owner(u), listing.filters(oldest_first=True), per_page=5),
                     "ix_analysis_user_shown_taken"),
    "one label": (lambda u, c: listing.page(owner(u), listing.filters(["dog"]), per_page=5),
                  "ix_analysis_label_user_label_taken"),
    "one label, scroll": (lambda u, c: listing.page(owner(u), listing.filters(["dog"]), cursor=c, per_page=5),
                          "ix_analysis_label_user_label_taken"),
    "two labels": (lambda u, c: listing.page(owner(u), listing.filters(["dog", "person"]), per_page=5),
                   "ix_analysis_label_user_label_taken"),
    "label and dates": (lambda u, c: listing.page(owner(u), listing.filters(
        ["person"], None, date(2020, 1, 1), date(2030, 1, 1)), per_page=5), "ix_analysis_label_user_label_taken"),
    "dates": (lambda u, c: listing.page(owner(u), listing.filters(
        (), None, date(2020, 1, 1), date(2030, 1, 1)), per_page=5), "ix_analysis_user_shown_taken"),
    "uploaded": (lambda u, c: listing.page(owner(u), BY_UPLOAD, per_page=5), "ix_analysis_user_shown_created"),
    "uploaded, oldest first": (lambda u, c: listing.page(owner(u), listing.filters(
        oldest_first=True, by_upload=True), per_page=5), "ix_analysis_user_shown_created"),
    "uploaded, one label": (lambda u, c: listing.page(owner(u), listing.filters(["dog"], by_upload=True), per_page=5),
                            "ix_analysis_label_user_label"),
    "uploaded, dates": (lambda u, c: listing.page(owner(u), listing.filters(
        (), None, date(2020, 1, 1), date(2030, 1, 1), by_upload=True), per_page=5), "ix_analysis_user_shown_created"),
}


@pytest.mark.parametrize("case", PAGE_QUERIES)
def test_a_page_query_uses_its_index_and_neither_scans_detections_nor_sorts(app, seeded, case):
    user_id, cursor, _ = seeded
    query, index = PAGE_QUERIES[case]
    plans = executed_plans(app, lambda: query(user_id, cursor))
    [plan] = [plan for sql, plan in plans if sql.lstrip().startswith("SELECT analysis.id")]
    assert re.search(rf"\b{index}\b", plan), plan
    for forbidden in ("detection", "TEMP B-TREE", "Seq Scan", "Sort", "SCAN analysis\n"):
        assert forbidden not in plan + "\n", plan


YEAR_QUERIES = {  # the scrubber's years: one row along the page's own index per year
    "years": (listing.filters(), "ix_analysis_user_shown_taken"),
    "years, oldest first": (listing.filters(oldest_first=True), "ix_analysis_user_shown_taken"),
    "years of a label": (listing.filters(["dog"]), "ix_analysis_label_user_label_taken"),
    "years, uploaded": (BY_UPLOAD, "ix_analysis_user_shown_created"),
}


@pytest.mark.parametrize("case", YEAR_QUERIES)
def test_the_scrubbers_years_read_one_row_a_year_along_the_pages_index(app, seeded, case):
    user_id, _, _ = seeded
    wanted, index = YEAR_QUERIES[case]
    plans = [plan for sql, plan in executed_plans(app, lambda: listing.years(owner(user_id), wanted))
             if re.match(r"\s*SELECT analysis(_label_1)?\.(taken|created)_at", sql)]
    assert len(plans) == 2  # the one year there is, then nothing before (or after) it
    for plan in plans:
        assert re.search(rf"\b{index}\b", plan), plan
        for forbidden in ("detection", "TEMP B-TREE", "Seq Scan", "Sort", "SCAN analysis\n"):
            assert forbidden not in plan + "\n", plan


@pytest.mark.parametrize("wanted, index", [(listing.filters(), "ix_analysis_user_shown_taken"),
                                           (listing.filters(["dog"]), "ix_analysis_label_user_label_taken")])
def test_the_way_back_from_a_photo_reads_a_few_rows_back_along_the_pages_index(app, seeded, wanted, index):
    user_id, _, _ = seeded
    with app.app_context():
        deep = listing.all_matching(owner(user_id), wanted)[15]
        cursor = listing.back_cursor(owner(user_id), wanted, deep, before=3)
        page = listing.page(owner(user_id), wanted, cursor=cursor, per_page=5)
        assert [run.id for run in page.items].index(deep.id) == 3  # three photos before it, then it
        near = listing.all_matching(owner(user_id), wanted)[2]
        assert listing.back_cursor(owner(user_id), wanted, near, before=3) is None  # the first page shows it
    plan = [plan for sql, plan in executed_plans(  # the last: the rows back (the first, the photo's own)
        app, lambda: listing.back_cursor(owner(user_id), wanted, db.session.get(Run, deep.id), before=3))
        if re.match(r"\s*SELECT analysis\.id", sql)][-1]
    assert re.search(rf"\b{index}\b", plan), plan
    for forbidden in ("detection", "TEMP B-TREE", "Seq Scan", "Sort", "SCAN analysis\n"):
        assert forbidden not in plan + "\n", plan


@pytest.mark.parametrize("wanted, expected", [
    (listing.filters(), [2026, 2021, 2019]),
    (listing.filters(oldest_first=True), [2019, 2021, 2026]),
    (listing.filters(["dog"]), [2026, 2019]),
    (listing.filters(by_upload=True), [2026, 2021, 2019]),
])
def test_the_scrubbers_years_are_those_the_listing_has_and_each_starts_a_page_in_it(app, wanted, expected):
    with app.app_context():
        ada = factories.user()
        for year, label in ((2019, "dog"), (2019, "cat"), (2021, "cat"), (2026, "dog"), (2026, "cat")):
            for day in (1, 31):
                moment = datetime(year, 1 if day == 1 else 12, day, tzinfo=timezone.utc)
                factories.analysis(ada, labels=[(label, 0.9)], created_at=moment)
        years = listing.years(ada, wanted)
        assert [year for year, _ in years] == expected
        for year, cursor in years:
            page = listing.page(ada, wanted, cursor=cursor, per_page=2)
            first = listing.sort_date(page.items[0], wanted)
            assert first.year == year and (first.month == 1 if wanted.oldest_first else first.month == 12)


def test_a_filter_without_a_kept_count_is_counted_only_up_to_one_more_than_asked(app, seeded):
    """Two labels: no kept count says how many photos show both, so they are counted, but never
    past `up_to` + 1, whatever the library's size."""
    user_id, _, _ = seeded
    both = listing.filters(["dog", "person"])
    with app.app_context():
        assert listing.count(owner(user_id), both) == 20
        assert listing.count(owner(user_id), both, up_to=5) == 6
        assert listing.count(owner(user_id), both, up_to=50) == 20
        assert listing.count(owner(user_id), listing.filters(), up_to=5) == 30  # kept: exact, and free
    [plan] = [plan for sql, plan in executed_plans(app, lambda: listing.count(owner(user_id), both, up_to=5))
              if "count(*)" in sql.lower()]
    assert re.search(r"\bix_analysis_label_user_label", plan), plan  # the label's own rows, from its index
    for forbidden in ("detection", "Seq Scan", "SCAN analysis\n"):
        assert forbidden not in plan + "\n", plan


def test_select_all_is_offered_only_where_one_action_can_take_them_all(client, auth, app, monkeypatch):
    from webapp.analyses import routes

    auth.signup()
    for _ in range(4):
        factories.add_analysis(app, labels=[("dog", 0.9), ("cat", 0.9)], user_email="ada@example.com")
    monkeypatch.setattr(routes, "BULK_LIMIT", 3)
    page = client.get("/analyses?label=dog&label=cat").get_data(as_text=True)
    assert re.search(r'id="bulk-select-all" hidden>', page) and 'data-total="4"' in page  # counted to 3 + 1
    monkeypatch.setattr(routes, "BULK_LIMIT", 4)
    page = client.get("/analyses?label=dog&label=cat").get_data(as_text=True)
    assert 'id="bulk-select-all">Select all 4 photos in this filter' in page


def test_counting_failed_photos_reads_the_status_index_not_every_photo(app, seeded):
    """The gallery's "N failed" count names user, status and current: with four indexes on
    analysis it must still look up by status, not read every current photo (SQLite plans
    without statistics; PostgreSQL may take any index on status)."""
    user_id, _, _ = seeded
    [plan] = [plan for sql, plan in executed_plans(app, lambda: lookups.count_failed(owner(user_id)))
              if "count(*)" in sql.lower()]
    assert re.search(r"INDEX \w+ \([^)]*status=\?|Index Cond: .*status", plan), plan


def test_the_filter_bar_and_the_cards_read_kept_counts_by_key(app, seeded):
    user_id, _, ids = seeded
    plans = executed_plans(app, lambda: (listing.label_summary(owner(user_id)),
                                         listing.labels_of([db.session.get(Run, i) for i in ids])))
    plans = [(sql, plan) for sql, plan in plans if "user_label" in sql or "analysis_label" in sql]
    assert len(plans) == 2
    for _, plan in plans:
        assert "detection" not in plan and "Seq Scan" not in plan and "SCAN " not in plan, plan


def test_created_at_ties_are_broken_by_id_so_no_photo_is_skipped_or_repeated(api, app):
    api.user()
    moment = datetime(2026, 5, 1, tzinfo=timezone.utc)
    ids = [factories.add_analysis(app, created_at=moment).public_id for _ in range(5)]
    seen, url = [], "/api/v1/analyses?per_page=2"
    while url:
        page = api.get(url).json
        seen += [i["id"] for i in page["items"]]
        url = page["next"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_the_gallery_scroll_link_keeps_the_filters(client, auth, app):
    auth.signup()
    for _ in range(30):
        factories.add_analysis(app, labels=[("dog", 0.9)])
    page = client.get("/analyses?label=dog&sort=oldest").get_data(as_text=True)
    assert 'hx-get="/analyses?cursor=' in page and "label=dog" in page and "sort=oldest" in page
    assert csrf_from(page)  # a full page


def test_two_deletes_of_one_photo_at_once_count_it_out_once(app):
    import threading

    api = ApiActions(app.test_client()).user()
    factories.add_analysis(app, labels=[("bus", 0.9)])
    gone = factories.add_analysis(app, labels=[("bus", 0.9), ("person", 0.9)]).public_id
    start, statuses = threading.Barrier(4), []

    def delete():
        client = app.test_client()
        start.wait()
        statuses.append(client.delete(f"/api/v1/analyses/{gone}", headers=api.headers).status_code)

    threads = [threading.Thread(target=delete) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [204, 404, 404, 404]
    listed = api.get("/api/v1/analyses?label=bus").json
    assert listed["total"] == 1 == len(listed["items"])
    with app.app_context():
        assert counts.check_counts() == []


def test_a_delete_waits_for_a_run_committing_its_labels(app):
    """The run has written its labels but not committed when the photo is deleted: the delete
    waits for the run, then counts the labels out (it does not miss them)."""
    import threading


    photo = factories.add_analysis(app, status="running")
    written, release, done = threading.Event(), threading.Event(), threading.Event()

    def run():
        with app.app_context():
            counts.record_labels(db.session.get(Run, photo.id), {"bus": 1})
            written.set()
            release.wait(10)
            db.session.commit()

    def delete():
        with app.app_context():
            removal.delete_photo(db.session.get(Run, photo.id))
            done.set()

    runner = threading.Thread(target=run)
    runner.start()
    written.wait(10)
    deleter = threading.Thread(target=delete)
    deleter.start()
    assert not done.wait(1)  # held back by the run's uncommitted labels
    release.set()
    runner.join()
    deleter.join()
    with app.app_context():
        assert counts.check_counts() == []
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserLabel)) == 0


def test_cursors_are_signed_and_only_good_for_their_own_listing(api, app):
    import base64

    api.user()
    for _ in range(3):
        factories.add_analysis(app)
    next_url = api.get("/api/v1/analyses?per_page=1").json["next"]
    cursor = next_url.split("cursor=")[1].split("&")[0]
    forged = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", true]').decode()
    assert api.get(f"/api/v1/analyses?cursor={forged}").status_code == 422
    assert api.get(f"/api/v1/analyses?cursor={cursor}&sort=oldest").status_code == 422
    eve = ApiActions(app.test_client()).user("eve@example.com")
    assert eve.get(f"/api/v1/analyses?cursor={cursor}").status_code == 422
    assert api.get(f"/api/v1/analyses?cursor={cursor}").status_code == 200


def test_page_numbers_count_along_the_next_links(api, app):
    api.user()
    for _ in range(5):
        factories.add_analysis(app)
    numbers, url = [], "/api/v1/analyses?per_page=2"
    while url:
        page = api.get(url).json
        numbers.append(page["page"])
        url = page["next"]
    assert numbers == [1, 2, 3]


@pytest.mark.parametrize("query, status", [
    ("to=9999-12-31", 200), ("from=0001-01-01", 200), ("label=%00", 422), ("from=0", 422),
    ("to=86400", 422), ("from=20261127", 422), ("from=2026-03-02&to=2026-03-01", 422), ("to=2026-02-30", 422),
])
def test_odd_filters_are_answered_never_a_500(api, query, status):
    api.user()
    assert api.get(f"/api/v1/analyses?{query}").status_code == status
    assert api.get(f"/api/v1/analyses/export?{query}").status_code == status


def test_the_gallery_uses_ten_labels_at_most_and_says_so(client, auth):
    auth.signup()
    page = client.get("/analyses?" + "&".join(f"label=l{i}" for i in range(300)))
    assert page.status_code == 200 and "Only the first 10 labels are used." in page.get_data(as_text=True)


def test_the_gallery_says_when_dates_are_reversed(client, auth):
    auth.signup()
    page = client.get("/analyses?from=2026-03-02&to=2026-03-01").get_data(as_text=True)
    assert "The first day is after the last" in page


def _looked_up_then_photo_deleted_elsewhere(app, public_id):
    """The run as a request looked it up, its photo not read yet; then another request deletes
    the photo (and so the run) and commits: the interleaving of two deletes at once."""
    run = db.session.scalar(sa.select(Run).where(Run.public_id == public_id)
                            .options(lazyload(Run.photo)))
    delete_photo_elsewhere(app, public_id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Photo).where(Photo.id == run.photo_id)) == 0
    return run


@pytest.mark.parametrize("delete", ["delete_photo", "delete_run"])
def test_deleting_a_run_whose_photo_was_deleted_meanwhile_is_not_found(app, delete):
    gone = factories.add_analysis(app, labels=[("bus", 0.9)]).public_id
    with app.app_context():
        run = _looked_up_then_photo_deleted_elsewhere(app, gone)
        with pytest.raises(NotFound):
            getattr(removal, delete)(run)
        assert counts.check_counts() == []


def test_a_run_is_looked_up_with_its_photo_in_one_statement(app):
    """So a photo deleted between two reads can never leave a run without its photo."""
    made = factories.add_analysis(app)
    with app.app_context():
        user = db.session.get(User, made.user_id)
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            with app.test_request_context():
                run = lookups.owned_run(user, made.public_id)
                assert run.photo.id == made.photo_id
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert len(statements) == 1, statements
