"""docs/ keeps up with the code: every environment variable webapp/config.py reads has its row in
docs/configuration.md."""
import ast
import re

from webapp.config import BASE_DIR

CONFIG = BASE_DIR / "webapp" / "config.py"
CONFIGURATION = BASE_DIR / "docs" / "configuration.md"


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` or a bare `environ`."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _reads_environment(call: ast.Call) -> bool:
    """`os.environ.get(...)` or `os.getenv(...)`."""
    func = call.func
    return isinstance(func, ast.Attribute) and (
        (func.attr == "get" and _is_environ(func.value)) or func.attr == "getenv")


def _string(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def environment_names(source: str) -> set[str]:
    """The names of the variables a module reads: string literals passed to `os.environ.get`,
    `os.getenv`, `os.environ[...]`, or to any function of the module that reads the environment
    by one of its parameters (`_env_int("MAX_BODY_SIZE", ...)` and the like)."""
    tree = ast.parse(source)
    helpers = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            parameters = {a.arg for a in function.args.args}
            for call in ast.walk(function):
                if isinstance(call, ast.Call) and _reads_environment(call) and call.args \
                        and isinstance(call.args[0], ast.Name) and call.args[0].id in parameters:
                    helpers.add(function.name)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            helper = isinstance(node.func, ast.Name) and node.func.id in helpers
            if helper or _reads_environment(node):
                names.add(_string(node.args[0]))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            names.add(_string(node.slice))
    names.discard(None)
    return names


def test_the_parser_finds_every_way_of_reading_the_environment():
    source = '''
import os
def _env_int(name, default):
    return int(os.environ.get(name) or default)
def _flag(key):
    return os.getenv(key) == "1"
class Config:
    A = os.environ.get("A")
    B = _env_int("B", 3)
    C = _flag("C")
    D = os.environ["D"]
    E = os.getenv("E", "x")
'''
    assert environment_names(source) == {"A", "B", "C", "D", "E"}


def test_every_setting_config_reads_is_documented():
    names = environment_names(CONFIG.read_text())
    assert len(names) >= 30, f"only {sorted(names)} found in webapp/config.py: is the parser broken?"
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", CONFIGURATION.read_text(), re.M))
    missing = sorted(names - documented)
    assert not missing, f"not in docs/configuration.md (a row `| `NAME` | default | meaning |` each): {missing}"
