"""What the import contracts (`.importlinter`, run by `make lint`) cannot say: routes never touch
the database session, services answer no request, imports are at the top of a module, and the
package root holds app-wide plumbing only."""
import ast
from pathlib import Path

import pytest

from webapp.config import BASE_DIR

PACKAGE = BASE_DIR / "webapp"
# The web layer: route modules, forms, the API, the shared web plumbing, the entry points.
WEB = {"web", "api"}
WEB_MODULES = {"routes.py", "forms.py", "sending.py"}
ENTRY_POINTS = {"__init__.py", "cli.py", "worker.py", "config.py", "extensions.py"}
# What answers a request: a service that needs one of these has left its layer.
ANSWERING = {"request", "abort", "send_file", "send_from_directory", "make_response", "redirect", "url_for",
             "jsonify", "Response", "render_template", "flash", "session", "g", "stream_with_context"}
# Function-level imports of webapp outside the app factory and the CLI: only those that keep a
# dependency out of processes that do not use it.
LAZY_IMPORTS = {("webapp/jobs/scheduling.py", "webapp.jobs.celery"),  # Celery's app, in Celery mode only
                ("webapp/jobs/pipeline.py", "webapp.vision.pixels")}  # NumPy and OpenCV: not in the web tier


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return str(path.relative_to(BASE_DIR))


def is_web(path: Path) -> bool:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] in WEB or path.name in WEB_MODULES or (len(parts) == 1 and path.name in ENTRY_POINTS)


def defines_routes(tree: ast.Module) -> bool:
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "route"
               for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for d in node.decorator_list)


ROUTE_MODULES = [p for p in modules() if defines_routes(ast.parse(p.read_text()))]
SERVICE_MODULES = [p for p in modules() if not is_web(p) and p.name != "__init__.py"]


def test_the_route_modules_are_found():
    assert len(ROUTE_MODULES) >= 9, [relative(p) for p in ROUTE_MODULES]


@pytest.mark.parametrize("path", ROUTE_MODULES, ids=relative)
def test_a_route_module_never_touches_the_database_session(path):
    text = path.read_text()
    tree = ast.parse(text)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "webapp.extensions" for alias in node.names}
    assert "db.session" not in text and "db" not in imported, "a route calls a service; the service uses the session"


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=relative)
def test_a_service_imports_nothing_that_answers_a_request(path):
    tree = ast.parse(path.read_text())
    found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and (node.module or "").split(".")[0] in ("flask", "werkzeug") for alias in node.names}
    assert not found & ANSWERING, f"{relative(path)} imports {sorted(found & ANSWERING)}: raise an error instead"


def test_the_services_are_found():
    names = {relative(p) for p in SERVICE_MODULES}
    assert {"webapp/analyses/uploads.py", "webapp/jobs/queue.py", "webapp/shares/links.py"} <= names
    assert not names & {relative(p) for p in ROUTE_MODULES}


def test_webapp_is_imported_at_the_top_of_modules_but_by_the_app_factory_and_the_cli():
    late = set()
    for path in modules():
        if relative(path) in ("webapp/__init__.py", "webapp/cli.py"):
            continue
        for function in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("webapp"):
                    late.add((relative(path), node.module))
    assert late == LAZY_IMPORTS


def test_the_package_root_keeps_app_wide_plumbing_only():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 7, root


def test_no_module_imports_a_module_that_imports_it_back():
    """Cycles of modules (import-linter's contract is about packages and their siblings): none,
    a blueprint package and its own routes included."""
    graph = {}
    names = {".".join(p.relative_to(BASE_DIR).with_suffix("").parts).removesuffix(".__init__"): p for p in modules()}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                subs = {f"{base}.{a.name}" for a in node.names} & names.keys()
                imported |= subs or ({base} & names.keys())
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names} & names.keys()
        graph[name] = imported - {name}
    cycles = [(a, b) for a in graph for b in graph[a] if a in _reachable(graph, b)]
    assert not cycles, cycles


def _reachable(graph: dict, start: str) -> set:
    seen, stack = set(), [start]
    while stack:
        for following in graph.get(stack.pop(), ()):
            if following not in seen:
                seen.add(following)
                stack.append(following)
    return seen
