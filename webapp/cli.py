"""`flask` commands."""
import click
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Analysis, AnalysisStatus


@click.command("analyses-stats")
def analyses_stats():
    """Print how many analyses there are in each status."""
    rows = db.session.execute(
        sa.select(Analysis.status, sa.func.count()).group_by(Analysis.status)
    ).all()
    counts = dict(rows)
    for status in AnalysisStatus.ALL:
        click.echo(f"{status:8} {counts.get(status, 0)}")


@click.command("check-model")
def check_model():
    """Load the configured YOLO model once and print its classes (fails with the reason)."""
    from flask import current_app

    from webapp.vision.detector import DetectorError, get_detector

    detector = get_detector(current_app)
    try:
        names = detector.names()
    except DetectorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{detector.settings.model}: {len(names)} classes on {detector.device}")


def init_app(app) -> None:
    app.cli.add_command(analyses_stats)
    app.cli.add_command(check_model)
