"""What leaves the app can be opened safely: CSV cells are never formulas, private images are
revalidated rather than cached."""
import csv
import io
from pathlib import Path

import pytest

from tests.factories import add_analysis
from tests.images import encode, sample


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\").jpg", "+1.jpg", "-2+3.jpg", "@SUM(A1).jpg",
                                  "\tcmd.jpg", "\rcmd.jpg"])
def test_a_csv_export_never_starts_a_cell_with_a_formula_character(client, auth, app, name):
    auth.signup()
    add_analysis(app, labels=[("dog", 0.9)], original_filename=name)
    rows = list(csv.reader(io.StringIO(client.get("/api/v1/analyses/export?format=csv").get_data(as_text=True))))
    [row] = rows[1:]
    assert row[1] == "'" + name and all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)


def test_a_private_image_is_revalidated_every_time(client, auth, app):
    auth.signup()
    analysis = add_analysis(app)
    stored = Path(app.config["UPLOAD_DIR"], analysis.photo.original_path)
    stored.parent.mkdir(parents=True)
    stored.write_bytes(encode(sample(), "JPEG"))
    response = client.get(f"/analyses/{analysis.public_id}/image/original")
    cache = response.headers["Cache-Control"]
    assert "private" in cache and "no-cache" in cache and "max-age" not in cache and "public" not in cache
    assert response.headers["ETag"]
    again = client.get(f"/analyses/{analysis.public_id}/image/original",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
