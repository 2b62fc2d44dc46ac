"""The README's curl session works as written, against a live server."""
import json
import os
import re
import shutil
import subprocess
import threading

import pytest
from werkzeug.serving import make_server

from webapp.config import BASE_DIR


def readme_session() -> str:
    text = (BASE_DIR / "README.md").read_text()
    match = re.search(r"<!-- curl-session -->\s*```sh\n(.*?)```", text, re.S)
    assert match, "README has no curl session"
    return match.group(1)


@pytest.fixture
def live(make_app, coco_model):
    app = make_app(YOLO_MODEL=coco_model, ANALYSIS_EXECUTOR="thread")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_readme_curl_session_works_as_written(live, assets, tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_session()], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env={**os.environ, "BASE": live, "PHOTO": str(assets / "bus.jpg")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert '"email":"me@example.com"' in lines[0].replace(" ", "")  # sign-up
    assert "'bus': 1" in result.stdout and "'person'" in result.stdout
    assert "analysis_id,filename" in result.stdout  # CSV header
    assert lines[-1] == "204"  # logout
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert coco["annotations"] and coco["images"][0]["file_name"] == "bus.jpg"
