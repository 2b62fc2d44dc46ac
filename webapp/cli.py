"""`flask` commands (the docstring is each command's help)."""
import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from webapp import detection
from webapp.analyses import history, pipeline
from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus
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
    """Load the detection model once and print its classes, or what is wrong and how to fix it."""
    detector = detection.get_detector()
    try:
        names = detector.names()
    except ModelUnavailable as exc:
        problem = detection.explain(exc, current_app.config)
        raise click.ClickException(
            f"Detection is unavailable: {problem.reason}.\n  Why: {exc.detail}\n  Fix: {problem.fix}"
        ) from exc
    click.echo(f"{detector.settings.model}: {len(names)} classes on {detector.device}")
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


def init_app(app) -> None:
    for command in (analyses_stats, check_model, check_counts, recover_interrupted):
        app.cli.add_command(command)
