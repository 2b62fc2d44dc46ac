"""Detection for the DeepStack endpoint: in this process where it detects itself (the thread
executor), else on a Celery worker (the photo goes through the shared uploads folder as a
temporary file, a `tasks.detect_stored` task answers through the result backend within
DEEPSTACK_TIMEOUT seconds, and the file is removed either way). With a key that keeps its
detections, the photo is an ordinary upload, waited for. Raises ImageRejected (not a photo we
read), DetectorError, or Refused: UNAVAILABLE when detection, the queue or a worker is not
there, another kind when the photo is not kept (a quota, say)."""
import io
from typing import Optional

from flask import current_app

from webapp import storage
from webapp.analyses.params import DetectionParams
from webapp.analyses.uploads import Upload, upload_files
from webapp.deepstack.tasks import decoded_for_detection, detect_stored, predictions, prediction
from webapp.detection.registry import runs_here
from webapp.detection.availability import DetectionUnavailable, explain
from webapp.errors import Refused
from webapp.extensions import db
from webapp.jobs.scheduling import get_runner
from webapp.models import Run
from webapp.vision.detector import ModelUnavailable
from webapp.vision.images import DAMAGED, DECODING_FOUND, ImageRejected, read_header

WORKER_FAILED = "Detection failed on a worker; its log has the details."


def detect(data: bytes, min_conf: float) -> list[dict]:
    """The boxes at or above `min_conf` in the photo, as DeepStack writes them; nothing stored."""
    max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
    if runs_here():  # this process detects: it decodes too
        try:
            return predictions(decoded_for_detection(data), min_conf)
        except ModelUnavailable as exc:
            raise DetectionUnavailable(explain(exc, current_app.config)) from None
    header = read_header(data, max_pixels)  # refused here, before a worker sees it; decoded there
    relative = storage.save_temporary(data, header.extension)  # the photo as sent
    try:
        answer = get_runner().call(detect_stored, relative, min_conf, timeout=current_app.config["DEEPSTACK_TIMEOUT"])
    finally:
        storage.delete([relative])
    if isinstance(answer, dict) and answer.get("rejected"):
        raise ImageRejected(answer.get("error") or DAMAGED)
    if not isinstance(answer, dict) or not answer.get("success"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise Refused(error or WORKER_FAILED, Refused.UNAVAILABLE)
    return answer["predictions"]


def detect_and_keep(user, filename: str, data: bytes, min_conf: float) -> list[dict]:
    """The key keeps detections: an ordinary upload, waited for, its boxes answered."""
    result = upload_files(user, [Upload(filename, io.BytesIO(data))], DetectionParams(conf=min_conf))
    if not result.accepted:
        if result.rejected:
            raise Refused(result.rejected[0].reason, Refused.INVALID)
        raise Refused("Not stored.", Refused.UNAVAILABLE)
    if not result.wait(current_app.config["DEEPSTACK_TIMEOUT"]):
        raise Refused("The photo is kept in your gallery, but its detection did not finish in time.",
                      Refused.UNAVAILABLE)
    run = _finished(result.ids()[0])
    if run is not None and run.error in DECODING_FOUND:  # kept, but not a photo we can read: a 400
        raise ImageRejected(run.error)
    if run is None or not run.is_done:
        raise Refused((run.error if run is not None else None) or "Detection failed.", Refused.UNAVAILABLE)
    return [prediction(d) for d in run.detections_at(min_conf)]


def _finished(run_id: int) -> Optional[Run]:
    db.session.rollback()  # a new transaction: what the workers committed is seen
    return db.session.get(Run, run_id)
