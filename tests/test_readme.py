"""The README and docs/ as written: the API's curl session works against a live server, the
README's offline-model block finds the model, the README stays short and on its own, the layout
table lists every module, and every relative link points to a file (and heading) that exists."""
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

from webapp.config import BASE_DIR


DOCS = BASE_DIR / "docs"
README_MAX_LINES = 150


def readme_session() -> str:
    text = (DOCS / "api.md").read_text()
    match = re.search(r"<!-- curl-session -->\s*```sh\n(.*?)```", text, re.S)
    assert match, "docs/api.md has no curl session"
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
    assert coco["annotations"] and coco["images"][0]["original_filename"] == "bus.jpg"


def test_readme_stands_on_its_own():
    text = (BASE_DIR / "README.md").read_text()
    assert "DESIGN.md" not in text and "STYLE.md" not in text


def test_readme_is_short():
    lines = (BASE_DIR / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


def test_readme_starts_with_the_two_commands():
    text = (BASE_DIR / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block and text[:first_block.start()].count("\n") <= 3, "the commands come right after the title"
    assert "make run" in first_block.group(1) and "make test" in first_block.group(1)


def markdown_files() -> list:
    return [BASE_DIR / "README.md", *sorted(DOCS.glob("*.md"))]


def without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def without_code(text: str) -> str:
    """The text without fenced blocks and code spans, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "code", without_fences(text))


def anchors(path) -> set:
    """GitHub's ids for the headings of a Markdown file: lower case, punctuation dropped, spaces
    to hyphens, -1, -2... on repeats."""
    ids, counts = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?)[ #]*$", without_fences(path.read_text()), re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", ""))
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        ids.add(f"{slug}-{counts[slug]}" if slug in counts else slug)
        counts[slug] = counts.get(slug, 0) + 1
    return ids


def test_every_relative_link_in_readme_and_docs_points_to_a_file_that_exists():
    broken, checked = [], 0
    for source in markdown_files():
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", without_code(source.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            checked += 1
            path, _, anchor = target.partition("#")
            resolved = (source.parent / path).resolve() if path else source
            name = f"{source.relative_to(BASE_DIR)}: {target}"
            if not resolved.exists():
                broken.append(f"{name} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{name} (no such heading)")
    assert checked >= 10, "no links found: is the pattern broken?"
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_layout_table_lists_every_module():
    text = (DOCS / "architecture.md").read_text()
    table = text.split("## What is where", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(webapp/[\w/]+\.py)`", table))
    modules = {str(p.relative_to(BASE_DIR)) for p in (BASE_DIR / "webapp").rglob("*.py")}
    assert listed == modules


def test_readme_offline_example_finds_the_model_with_no_settings(tmp_path, random_weights):
    """From a fresh checkout, offline: a model copied into instance/models/ as the README shows
    is the one `make check-model` loads, with no variable set."""
    text = (BASE_DIR / "README.md").read_text()
    block = re.search(r"<!-- offline-model -->\s*```sh\n(.*?)```", text, re.S).group(1)
    assert "make run" in block and "/path/to/yolo11n.pt" in block
    project = tmp_path / "project"
    project.mkdir()
    setup = block.replace("/path/to/yolo11n.pt", str(random_weights)).replace("make run", "")
    subprocess.run(["bash", "-euc", setup], cwd=project, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_MODEL", "MODELS_DIR", "FLASK_"))}
    env.update(INSTANCE_PATH=str(project / "instance"), YOLO_OFFLINE="1")
    flask = shutil.which("flask", path=os.path.dirname(sys.executable))
    result = subprocess.run([flask, "--app", "wsgi", "--debug", "check-model"], cwd=BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{project / 'instance' / 'models' / random_weights.name}: 80 classes on" in result.stdout
