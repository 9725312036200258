"""`--help` of `python -m expo.train` and `experiments/launch.py`, generated from the config's own
documentation: every key with its default, type and one line of description.

The descriptions are the comments written beside each key of the dict literals that define the keys,
RUN_DEFAULTS (expo/config.py) and each agent module's get_config(), read with tokenize: the comment on
the key's line, else the comment lines directly above it, cut to their first sentence. A key with no
comment gets an empty description. The launcher adds its own keys and the cluster keys, whose
definitions carry their descriptions (experiments/launch.py LAUNCHER_KEYS, experiments/cluster.py
KEY_HELP).
"""
from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from typing import Any, Iterable

from expo import config as config_lib

HELP_WORDS = ("--help", "-h", "help")
# The end of a description's first sentence: a full stop before a capital (not "e.g. N16", "Fig. 9").
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!Fig)(?<!Sec)(?<!Eq)\.\s+(?=[A-Z])")


def wants_help(argv: Iterable[str]) -> bool:
    return any(a in HELP_WORDS for a in argv)


def _comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """(comment after code, by line; comment alone on its line, by line)."""
    trailing, alone = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            (trailing if tok.line[:tok.start[1]].strip() else alone)[tok.start[0]] = text
    return trailing, alone


def _one_line(lines: list[str]) -> str:
    text = ""
    for line in lines:
        text += line if not text or text.endswith("/") else " " + line
    match = _SENTENCE_END.search(text)
    return text[:match.start() + 1] if match else text


def _key_comments(node: ast.Dict, source_lines: list[str], trailing: dict[int, str],
                  alone: dict[int, str], prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in zip(node.keys, node.values):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            continue
        name = prefix + key.value
        if isinstance(value, ast.Dict):  # a nested dict: its keys are the dotted ones (dataset.name)
            out.update(_key_comments(value, source_lines, trailing, alone, name + "."))
            continue
        line = key.lineno
        lines = [trailing[line]] if line in trailing else []
        if not lines and not source_lines[line - 1][:key.col_offset].strip():
            above = line - 1
            while above in alone:
                lines.insert(0, alone[above])
                above -= 1
        out[name] = _one_line(lines)
    return out


def dict_comments(source: str, node: ast.Dict) -> dict[str, str]:
    """{dotted key: description} of the dict literal `node` parsed from `source`."""
    trailing, alone = _comments(source)
    return _key_comments(node, source.splitlines(), trailing, alone)


def run_key_docs() -> dict[str, str]:
    """The description of every RUN_DEFAULTS key (dotted: dataset.name), from expo/config.py."""
    source = inspect.getsource(config_lib)
    for node in ast.walk(ast.parse(source)):
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(target, ast.Name)
                and target.id == "RUN_DEFAULTS" and isinstance(node.value, ast.Dict)):
            return dict_comments(source, node.value)
    raise LookupError("RUN_DEFAULTS is not a dict literal in expo/config.py")


def agent_key_docs(module) -> dict[str, str]:
    """The description of every key of an agent module's get_config() (the dict literal it returns)."""
    source = inspect.getsource(module.get_config)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            return dict_comments(source, node.value)
    return {}


def show_value(value: Any, width: int = 20) -> str:
    """A default as it is written on the command line: none, true, 3e-4, (256, 256), text."""
    if value is None or isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        text = value if value else "''"
    else:
        text = str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def type_name(key: str, default: Any) -> str:
    if default is None:
        default = config_lib.NONE_DEFAULT_TYPES.get(key)
    if default is None:
        return "any"
    if isinstance(default, (tuple, list)):
        return "tuple"
    return type(default).__name__


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """Rows of (key, default, type, description), aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"  {k:<{widths[0]}}  {d:<{widths[1]}}  {t:<{widths[2]}}  {text}".rstrip()
                     for k, d, t, text in rows)


def run_rows(skip: Iterable[str] = ()) -> list[tuple[str, str, str, str]]:
    docs = run_key_docs()
    return [(key, show_value(default), type_name(key, default), docs.get(key, ""))
            for key, default in config_lib.flatten(config_lib.RUN_DEFAULTS).items() if key not in skip]


def agent_rows(method: str) -> list[tuple[str, str, str, str]]:
    module = config_lib.agent_module(method)
    docs = agent_key_docs(module)
    return [(f"agent.{key}", show_value(default), type_name(f"agent.{key}", default), docs.get(key, ""))
            for key, default in config_lib.flatten(module.get_config()).items()]


def method_of(argv: Iterable[str], default: str = "expo") -> str:
    """The method named by method=... (or the first of methods=...) among the arguments."""
    for item in argv:
        key, _, value = item.partition("=")
        if key.strip() in ("method", "methods") and value.strip():
            return value.split(",")[0].strip()
    return default


def run_sections(method: str) -> str:
    """The run keys and the agent keys of `method`; ConfigError for an unknown method."""
    agent = table(agent_rows(method))
    preset = config_lib.METHODS[method]["overrides"]
    fixed = (" (the method sets " + ", ".join(f"{k}={show_value(v)}" for k, v in preset.items()) + ")"
             if preset else "")
    return (f"Run keys (expo/config.py RUN_DEFAULTS; none: from the task's protocol row, expo/protocol.py):\n"
            f"{table(run_rows())}\n\n"
            f"Agent keys of method {method} ({config_lib.METHODS[method]['agent']}.get_config()){fixed}; "
            f"another method's: --help method=<name>:\n{agent}\n\n"
            f"Methods: {', '.join(config_lib.METHODS)}.")


SHORT_RUN = "pretrain_steps=500 steps=1000 eval_interval=500 eval_episodes=5"
VALUES = ("Values: numbers (3, 1e-4), true / false (the only values of a bool key), none, tuples "
          "((64,64)), text.")


def train_help(method: str) -> str:
    return (f"usage: python -m expo.train [key=value ...]   one run; --help [method=<name>] prints this\n"
            f"  python -m expo.train task=lift method=expo seed=0 scale=mini\n"
            f"  python -m expo.train task=lift scale=mini {SHORT_RUN}   # a short run\n"
            f"{VALUES}\n\n{run_sections(method)}")
