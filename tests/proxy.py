"""Debian's nginx in front of a web process, configured from the compose stack's template
(docker/nginx/spotter.conf.template) as the nginx image's envsubst step would configure it: the
proxy of tests/test_stack.py (the stack's processes) and tests/test_images.py (its containers)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from webapp.config import BASE_DIR

NGINX_TEMPLATE = BASE_DIR / "docker" / "nginx" / "spotter.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render_nginx_template(values: dict[str, str]) -> str:
    """What the nginx image's envsubst step makes of the template: each ${VAR} that is set is
    replaced; nginx's own $variables are left alone."""
    text = NGINX_TEMPLATE.read_text()
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)
    assert "${" not in rendered, "the template uses a variable the stack does not set"
    return rendered


def nginx_command(folder: Path, upstream_port: int, port: int) -> list[str]:
    """Configure nginx in `folder` (made here) to listen on 127.0.0.1:`port` for the web process
    on `upstream_port`, with the compose file's values; check the configuration; return the
    command that runs it in the foreground. Skips the test where nginx is not installed."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (apt-get install nginx; CI does)")
    folder.mkdir()
    (folder / "spotter.conf").write_text(render_nginx_template({
        "SPOTTER_UPSTREAM": f"127.0.0.1:{upstream_port}", "NGINX_PORT": f"127.0.0.1:{port}",
        "STATIC_ROOT": str(BASE_DIR / "static"), "MAX_CONTENT_LENGTH": "20971520", "MAX_BODY_SIZE": "65536",
        "NGINX_REAL_IP_FROM": "127.0.0.1",
    }))
    user = "user root root;" if os.geteuid() == 0 else ""  # its workers write the body buffers here
    temp_paths = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in
                            ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (folder / "nginx.conf").write_text(f"""{user}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 16384; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder / "access.log"};
{temp_paths}
    include {folder / "spotter.conf"};
}}
""")
    args = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    test = subprocess.run(args + ["-t"], capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, test.stderr
    return args + ["-g", "daemon off;"]
