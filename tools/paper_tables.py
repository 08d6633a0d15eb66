"""The SVF paper's tables, read from docs/paper_tables.yaml (the one place that defines them).

    tables = load_tables()
    row = tables["7"].rows[2]          # supplement Table 7, r3
    row.keys, row.paper[1]             # {"mode": "partial", "ft_kernels": "3x3"}, [59.57, ...]
"""
import math
import os
from dataclasses import dataclass, replace

from util.config import read_yaml
from util.fileio import REPO_ROOT

TABLES_FILE = os.path.join(REPO_ROOT, "docs", "paper_tables.yaml")
DATASETS = ("pascal", "coco")
TABLE_FIELDS = {"title", "source", "dataset", "backbone", "shots", "filter", "about", "rows"}
ROW_FIELDS = {"name", "keys", "arch", "backbone", "strategy", "filter", "test", "paper",
              "not_run", "reading"}


@dataclass(frozen=True)
class Row:
    """One printed row: `number` counts from 1 as printed; `keys` are config keys (mode first);
    `paper` maps a shot to [fold0, fold1, fold2, fold3, mean]; `not_run` says why a row has
    no command (another paper's numbers, a method the project lacks)."""
    table: str
    number: int
    name: str
    keys: dict
    arch: str
    backbone: str
    strategy: str
    filter: bool
    test: dict
    paper: dict
    not_run: str
    reading: str

    @property
    def runnable(self):
        return not self.not_run

    @property
    def label(self):
        return f"{self.table_label} r{self.number}"

    @property
    def table_label(self):
        if self.table.startswith("main"):
            return f"main Table {self.table[len('main'):]}"
        return f"supplement Table {self.table}"


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    source: str
    dataset: str
    backbone: str
    shots: tuple
    filter: bool
    about: str
    rows: tuple


def _fail(where, message):
    raise ValueError(f"{TABLES_FILE}: {where}: {message}")


def _row(table_id, number, data, table):
    where = f"table {table_id} row {number}"
    if not isinstance(data, dict) or not set(data) <= ROW_FIELDS or "name" not in data:
        _fail(where, f"a row is a mapping with a name and some of {', '.join(sorted(ROW_FIELDS))}")
    keys = dict(data.get("keys") or {})
    if not data.get("not_run") and "mode" not in keys:
        _fail(where, "a row that runs needs keys.mode (or not_run: why it has no command)")
    paper = {int(shot): list(values) for shot, values in (data.get("paper") or {}).items()}
    for shot, values in paper.items():
        if shot not in table.shots or len(values) != 5 or not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            _fail(where, f"paper {shot}-shot must be five numbers (4 folds, mean) of a shot in "
                         f"{list(table.shots)}")
    mode = keys.get("mode")
    strategy = data.get("strategy") or ("original" if mode == "freeze" else "svf")
    return Row(table_id, number, str(data["name"]), keys, data.get("arch", "baseline"),
               data.get("backbone", table.backbone), strategy,
               bool(data.get("filter", table.filter)), dict(data.get("test") or {}), paper,
               str(data.get("not_run") or ""), " ".join(str(data.get("reading") or "").split()))


def _table(table_id, data):
    where = f"table {table_id}"
    if not isinstance(data, dict) or set(data) != TABLE_FIELDS:
        _fail(where, f"a table has exactly the fields {', '.join(sorted(TABLE_FIELDS))}")
    if data["dataset"] not in DATASETS:
        _fail(where, f"dataset must be one of {', '.join(DATASETS)}, got {data['dataset']!r}")
    table = Table(str(table_id), data["title"], data["source"], data["dataset"],
                  data["backbone"], tuple(data["shots"]), bool(data["filter"]),
                  " ".join(str(data["about"]).split()), ())
    rows = tuple(_row(table.id, i + 1, r, table) for i, r in enumerate(data["rows"]))
    return replace(table, rows=rows)


def load_tables(path=TABLES_FILE):
    """{table id: Table} in the file's order, and the strategies {name: {arch: {key: value}}}."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the paper's table definitions are missing")
    data = read_yaml(path)
    if not {"strategies", "tables"} <= set(data):
        raise ValueError(f"{path}: expected the mappings 'strategies' and 'tables'")
    tables = {str(k): _table(k, v) for k, v in data["tables"].items()}
    strategies = data["strategies"]
    for table in tables.values():
        for row in table.rows:
            if row.runnable and row.strategy not in strategies:
                _fail(f"table {table.id} row {row.number}",
                      f"unknown strategy {row.strategy!r}; expected one of {', '.join(strategies)}")
    return tables, strategies


def strategy_keys(strategies, name, arch):
    """The config keys of strategy `name` for `arch` ({} when it sets none)."""
    keys = strategies[name] or {}
    if keys and all(isinstance(v, dict) for v in keys.values()):
        if arch not in keys:
            raise ValueError(f"{TABLES_FILE}: strategy {name!r} gives no keys for arch {arch!r}")
        return dict(keys[arch])
    return dict(keys)
