"""`flask` commands (the docstring is each command's help)."""
import time
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from webapp import detection
from webapp import jobs
from webapp.analyses import history, importing, pipeline
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus, User
from webapp.vision.detector import ModelUnavailable


@click.command("analyses-stats")
@with_appcontext
def analyses_stats():
    """Print how many analyses there are in each status."""
    counts = dict(db.session.execute(
        sa.select(Analysis.status, sa.func.count()).group_by(Analysis.status)
    ).all())
    for status in AnalysisStatus:
        click.echo(f"{status:8} {counts.get(status, 0)}")


@click.command("check-model")
@with_appcontext
def check_model():
    """Load each detection model (the default, then YOLO_MODELS') once and print its classes,
    or what is wrong and how to fix it."""
    for name in detection.model_names():
        detector = detection.get_detector(model=None if name == detection.DEFAULT_NAME else name)
        try:
            names = detector.names()
        except ModelUnavailable as exc:
            problem = detection.explain(exc, current_app.config)
            raise click.ClickException(
                f"Detection{'' if name == detection.DEFAULT_NAME else f' ({name})'} is unavailable: "
                f"{problem.reason}.\n  Why: {exc.detail}\n  Fix: {problem.fix}"
            ) from exc
        click.echo(f"{name}: {detector.settings.model}: {len(names)} classes on {detector.device}")
        click.echo(", ".join(names[i] for i in sorted(names)))


@click.command("recover-interrupted")
@with_appcontext
def recover_interrupted():
    """Mark as failed the analyses left pending/running by processes that no longer exist
    (run at start-up; gunicorn's workers do it themselves)."""
    count = pipeline.recover_interrupted()
    click.echo(f"{count} interrupted analyses marked failed (they can be retried).")


@click.command("check-counts")
@click.option("--fix", is_flag=True, help="Rebuild the kept counts from the detections.")
@with_appcontext
def check_counts(fix: bool):
    """Recompute the kept counts (photos per user, labels per photo and per user) from the
    analyses and detections, and print every difference (exit status 1 if any)."""
    problems = history.check_counts()
    for line in problems[:200]:
        click.echo(line)
    if problems and fix:
        history.rebuild_counts()
        click.echo(f"{len(problems)} differences found; the counts were rebuilt.")
        return
    if problems:
        raise click.ClickException(f"{len(problems)} differences (run with --fix to rebuild the counts).")
    click.echo("The kept counts match the detections.")


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
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No account with the email {email}: sign up first.")
    runner = jobs.get_runner()
    if no_wait and runner.in_process:
        raise click.ClickException("--no-wait needs ANALYSIS_EXECUTOR=celery: detection in this process would "
                                   "stop when the command returns.")
    try:
        runner.check_broker()
    except jobs.QueueUnavailable as exc:
        raise click.ClickException(f"The detection queue cannot be reached: {exc}") from exc
    if detection.runs_here():  # load the model now: its start-up is not the photos' time
        pipeline.recover_interrupted()  # what an interrupted import left behind is retried below
        try:
            detection.get_detector().load()
        except ModelUnavailable as exc:
            click.echo(f"Warning: {exc} The photos are kept, marked failed, and can be retried.", err=True)
    elif not no_wait and not runner.workers_answering():
        click.echo(f"Warning: {detection.NO_WORKER}, so the photos wait on the queue. {detection.START_WORKER}",
                   err=True)
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

    files, ignored = importing.library_files(paths)
    started = time.perf_counter()
    with tqdm(total=len(files), unit="photo", desc="Importing", disable=None) as bar:
        try:
            report = importing.import_photos(user, files, bar.update)
        except jobs.QueueUnavailable as exc:
            raise click.ClickException(f"The detection queue went down: {exc}. Run the same command "
                                       "again to import the rest.") from exc
    queued, retried = len(report.imported), len(report.retried)
    counts = {}
    if queued + retried and not no_wait:
        with tqdm(total=queued + retried, unit="photo", desc="Detecting", disable=None) as bar:
            counts = importing.wait_for(report.imported + report.retried, bar.update)
    seconds = time.perf_counter() - started
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
        done, failed = counts.get(AnalysisStatus.DONE, 0), counts.get(AnalysisStatus.FAILED, 0)
        click.echo(f"Imported {queued} photos for {user.email} in {seconds:.1f} s ({queued / seconds:.1f} photos/s): "
                   f"{done} done, {failed} failed; {report.already} already there{again}.")
    if ignored:
        click.echo(f"{ignored} files that are not images were ignored.")
    if report.refused:
        click.echo(f"{len(report.refused)} files were refused:")
        for path, reason in report.refused:
            click.echo(f"  {path}: {reason}")


def init_app(app) -> None:
    for command in (analyses_stats, check_model, check_counts, import_photos, recover_interrupted):
        app.cli.add_command(command)
