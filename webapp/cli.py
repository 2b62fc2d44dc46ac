"""`flask` commands (the docstring is each command's help)."""
import time
from pathlib import Path

import click
from flask import Flask, current_app, url_for
from flask.cli import with_appcontext

from webapp import storage
from webapp.analyses import importing, trash
from webapp.auth import operator
from webapp.auth.accounts import EmailTaken, find_user, is_email, normalize_email
from webapp.detection.registry import DEFAULT_NAME, get_detector, model_names, runs_here
from webapp.detection.availability import NO_WORKER, START_WORKER, explain
from webapp.jobs.recovery import fail_interrupted
from webapp.jobs.scheduling import QueueUnavailable, get_runner
from webapp.library.counts import check_counts as find_differences, rebuild_counts, runs_by_status
from webapp.errors import NotFound
from webapp.models import RunStatus, User
from webapp.vision.detector import ModelUnavailable


@click.command("analyses-stats")
@with_appcontext
def analyses_stats():
    """Print how many runs (analyses) there are in each status."""
    counts = runs_by_status()
    for status in RunStatus:
        click.echo(f"{status:8} {counts.get(status, 0)}")


@click.command("check-model")
@with_appcontext
def check_model():
    """Load each detection model (the default, then YOLO_MODELS') once and print its classes,
    or what is wrong and how to fix it."""
    for name in model_names():
        detector = get_detector(model=None if name == DEFAULT_NAME else name)
        try:
            names = detector.names()
        except ModelUnavailable as exc:
            problem = explain(exc, current_app.config)
            raise click.ClickException(
                f"Detection{'' if name == DEFAULT_NAME else f' ({name})'} is unavailable: "
                f"{problem.reason}.\n  Why: {exc.detail}\n  Fix: {problem.fix}"
            ) from exc
        click.echo(f"{name}: {detector.settings.model}: {len(names)} classes on {detector.device}")
        click.echo(", ".join(names[i] for i in sorted(names)))


@click.command("recover-interrupted")
@with_appcontext
def recover_interrupted():
    """Mark as failed the runs left pending/running by processes that no longer exist
    (run at start-up; gunicorn's workers queue them again themselves)."""
    count = fail_interrupted()
    click.echo(f"{count} interrupted analyses marked failed (they can be retried).")


@click.command("check-counts")
@click.option("--fix", is_flag=True, help="Rebuild the kept counts from the detections.")
@with_appcontext
def check_counts(fix: bool):
    """Recompute the kept counts (photos per user, labels per photo and per user) from the
    runs and detections, and print every difference (exit status 1 if any)."""
    problems = find_differences()
    for line in problems[:200]:
        click.echo(line)
    if problems and fix:
        rebuild_counts()
        click.echo(f"{len(problems)} differences found; the counts were rebuilt.")
        return
    if problems:
        raise click.ClickException(f"{len(problems)} differences (run with --fix to rebuild the counts).")
    click.echo("The kept counts match the detections.")


@click.command("purge-trash")
@with_appcontext
def purge_trash():
    """Delete for good what has been in the Trash TRASH_DAYS days or more (the web processes do
    it every TRASH_PURGE_SECONDS; this is for cron where that is 0)."""
    days = current_app.config["TRASH_DAYS"]
    purged = trash.purge_all_expired(days)
    click.echo(f"Purged {purged} photo{'' if purged == 1 else 's'} kept in the Trash {days} days or more.")


@click.command("import-photos")
@click.option("--user", "email", required=True, help="The account the photos are added to (its email).")
@click.option("--no-wait", is_flag=True,
              help="Return once every photo is queued on the Celery workers, without waiting for detection.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@with_appcontext
def import_photos(email: str, no_wait: bool, paths: tuple[Path, ...]):
    """Add every supported image under PATHS (files, and folders recursively) to a user's
    library, analysed like uploads. Photos already in that library (same content) are skipped,
    and those whose analysis failed or was interrupted are run again, so an interrupted import
    is simply run again. Refused files are listed with the reason."""
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"No account with the email {email}: sign up first.")
    runner = get_runner()
    if no_wait and runner.in_process:
        raise click.ClickException("--no-wait needs ANALYSIS_EXECUTOR=celery: detection in this process would "
                                   "stop when the command returns.")
    try:
        runner.check_broker()
    except QueueUnavailable as exc:
        raise click.ClickException(f"The detection queue cannot be reached: {exc}") from exc
    if runs_here():  # load the model now: its start-up is not the photos' time
        fail_interrupted()  # what an interrupted import left behind is retried below
        try:
            get_detector().load()
        except ModelUnavailable as exc:
            click.echo(f"Warning: {exc} The photos are kept, marked failed, and can be retried.", err=True)
    elif not no_wait and not runner.workers_answering():
        click.echo(f"Warning: {NO_WORKER}, so the photos wait on the queue. {START_WORKER}", err=True)
        no_wait = True
    try:
        _import(user, paths, no_wait)
    except KeyboardInterrupt:
        runner.close(finish=False)  # what is being detected finishes; the rest is retried next time
        click.echo("\nInterrupted. Run the same command again: it skips what is done and runs the rest.", err=True)
        raise SystemExit(130) from None
    finally:
        runner.close(finish=False)


def _import(user: User, paths: tuple[Path, ...], no_wait: bool) -> None:
    from tqdm import tqdm

    files, ignored, not_taken = importing.library_files(paths, storage.root())
    started = time.perf_counter()
    with tqdm(total=len(files), unit="photo", desc="Importing", disable=None) as bar:
        try:
            report = importing.import_photos(user, files, bar.update)
        except QueueUnavailable as exc:
            raise click.ClickException(f"The detection queue went down: {exc}. Run the same command "
                                       "again to import the rest.") from exc
    queued, retried = len(report.imported), len(report.retried)
    counts = {}
    if queued + retried and not no_wait:
        with tqdm(total=queued + retried, unit="photo", desc="Detecting", disable=None) as bar:
            counts = importing.wait_for(report.imported + report.retried, bar.update)
    _say_imported(user, paths, files, report, counts, no_wait, time.perf_counter() - started)
    if ignored:
        click.echo(f"{ignored} files that are not images were ignored.")
    refused = not_taken + report.refused
    if refused:
        click.echo(f"{len(refused)} files were refused:")
        for path, reason in refused:
            click.echo(f"  {path}: {reason}")


def _say_imported(user, paths, files, report, counts, no_wait: bool, seconds: float) -> None:
    queued, retried = len(report.imported), len(report.retried)
    again = f"; {retried} that had failed or were interrupted run again" if retried else ""
    if not files:
        click.echo(f"No photos found under {', '.join(map(str, paths))}.")
    elif not queued:
        click.echo(f"Nothing to import: {report.already} of {report.found} photos are already in "
                   f"{user.email}'s library" + (f", {len(report.refused)} refused" if report.refused else "")
                   + again + ".")
    elif no_wait:
        click.echo(f"Queued {queued} photos for {user.email} ({report.already} already there{again}); "
                   "they are analysed in the background.")
    else:
        done, failed = counts.get(RunStatus.DONE, 0), counts.get(RunStatus.FAILED, 0)
        click.echo(f"Imported {queued} photos for {user.email} in {seconds:.1f} s ({queued / seconds:.1f} photos/s): "
                   f"{done} done, {failed} failed; {report.already} already there{again}.")


# ---- accounts: `flask users ...` ----

@click.group("users")
def users():
    """Accounts: list, create, reset a password, invite, disable, enable, delete."""


def _account(email: str) -> User:
    try:
        return operator.account(email)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc


def _link(endpoint: str, **values) -> str:
    """A page's link from PUBLIC_URL; without it, the path alone (`_print_link` says so)."""
    with current_app.test_request_context("/"):
        path = url_for(endpoint, **values)
    return current_app.config["PUBLIC_URL"] + path


def _print_link(what: str, link: str) -> None:
    click.echo(f"{what} (it works once, for {current_app.config['INVITE_DAYS']} days):")
    click.echo(f"  {link}")
    if not current_app.config["PUBLIC_URL"]:
        click.echo("PUBLIC_URL is not set: put this instance's address (https://photos.example.com) in front "
                   "of that path, and set PUBLIC_URL so that links come whole.")


@users.command("list")
@with_appcontext
def users_list():
    """Every account: email, when it was made, photos, space, API keys, and whether it is disabled."""
    rows = operator.list_accounts()
    if not rows:
        click.echo("No accounts yet.")
    for row in rows:
        size = storage.human_size(row.stored_bytes)
        click.echo(f"{row.email:40} {row.created_at:%Y-%m-%d} {row.photos:>7} photos {size:>9} {row.api_keys:>3} keys"
                   + ("  DISABLED" if row.disabled else ""))


@users.command("create")
@click.argument("email")
@with_appcontext
def users_create(email: str):
    """Make an account for EMAIL (whatever SIGNUP says) and print a one-time link its owner sets
    a password with."""
    if not is_email(email):
        raise click.ClickException(f"{email!r} is not an email address.")
    try:
        user, token = operator.create(email)
    except EmailTaken as exc:
        raise click.ClickException(f"{normalize_email(email)} has an account already.") from exc
    _print_link(f"Account {user.email} created. Send its owner this link to set a password",
                _link("auth.reset_password", token=token))


@users.command("reset-password")
@click.argument("email")
@with_appcontext
def users_reset_password(email: str):
    """Print a one-time link that sets a new password for EMAIL (using it logs the account out
    everywhere). The current password keeps working until then."""
    user = _account(email)
    if user.is_disabled:
        raise click.ClickException(f"{user.email} is disabled, so no link would work: "
                                   f"`flask users enable {user.email}` first.")
    _print_link(f"Send {user.email} this link to set a new password",
                _link("auth.reset_password", token=operator.set_password_token(user)))


@users.command("invite")
@click.argument("email")
@with_appcontext
def users_invite(email: str):
    """Print a single-use link that signs up EMAIL (for SIGNUP=invite; works with open too)."""
    if not is_email(email):
        raise click.ClickException(f"{email!r} is not an email address.")
    if current_app.config["SIGNUP"] == "closed":
        raise click.ClickException("SIGNUP is closed, so no invitation works: set SIGNUP=invite, or make the "
                                   "account with `flask users create EMAIL`.")
    try:
        token = operator.invite(email)
    except EmailTaken as exc:
        raise click.ClickException(str(exc)) from exc
    _print_link(f"Invitation for {normalize_email(email)}", _link("auth.signup", invite=token))


@users.command("disable")
@click.argument("email")
@with_appcontext
def users_disable(email: str):
    """Disable EMAIL's account: it cannot sign in, its sessions, tokens, API keys and share links
    stop working now, and its queued photos are not analysed."""
    user = _account(email)
    operator.disable(user)
    click.echo(f"{user.email} is disabled; `flask users enable {user.email}` undoes it.")


@users.command("enable")
@click.argument("email")
@with_appcontext
def users_enable(email: str):
    """Let a disabled account sign in again (its keys and share links work again)."""
    user = _account(email)
    operator.enable(user)
    click.echo(f"{user.email} is enabled.")


@users.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask to confirm.")
@with_appcontext
def users_delete(email: str, yes: bool):
    """Delete EMAIL's account with every photo, result, key and share link, files included. It
    cannot be undone."""
    user = _account(email)
    if not yes:
        click.confirm(f"Delete {user.email} with its {user.photos} photos and every file, for good?", abort=True)
    address = user.email
    operator.delete(user)
    click.echo(f"{address} is deleted, with all its photos and files.")


def init_app(app: Flask) -> None:
    for command in (analyses_stats, check_model, check_counts, import_photos, purge_trash, recover_interrupted,
                    users):
        app.cli.add_command(command)
