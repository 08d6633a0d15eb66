"""Every run of one of the SVF paper's tables, as the project's ordinary commands.

    python -m tools.paper 7                 # train and test commands of Table 7, folds 0-3
    python -m tools.paper main1 --folds 0   # main Table 1, fold 0 only
    python -m tools.paper 7 --run           # run them in order, skipping finished runs
    python -m tools.paper --list            # the tables
    python -m tools.paper --doc             # rewrite the generated parts of docs/paper.md

Tables 1-13 are the supplement's, main1 and main2 the main paper's; their rows are defined in
docs/paper_tables.yaml and explained in docs/paper.md. The printed lines form a shell script.
A run is finished when test.py's record for it exists and was made with the same settings;
--run trains with resume=auto, so an interrupted training continues where it stopped. BAM's
base learner (stage 1) comes first for tables with BAM rows.
"""
import os
import subprocess
import sys

from util.cli import command_parser, run_main
from util.config import read_yaml
from util.data.folds import NUM_FOLDS
from util.fileio import REPO_ROOT, atomic_write_text

from tools.paper_doc import DOC_FILE, settings_line, update_doc
from tools.paper_records import find_record
from tools.paper_runs import base_learner_jobs, row_jobs, run_keys
from tools.paper_tables import load_tables


def plan(table, strategies, folds):
    """The table's work in order: a list of comment strings and Jobs."""
    items = [f"# {table.source}: {table.title}", f"# {settings_line(table)}"]
    base = base_learner_jobs(table, folds)
    if base:
        items += ["# BAM's base learner (stage 1), needed by the bam rows"] + base
    for row in table.rows:
        if not row.runnable:
            items.append(f"# r{row.number} {row.name}: not run ({row.not_run})")
            continue
        shot_seen = None
        for shot, job in row_jobs(row, table.dataset, strategies, folds):
            if shot != shot_seen:
                items.append(f"# r{row.number} {row.name}, {shot}-shot")
                shot_seen = shot
            items.append(job)
    return items


def _in_repo(path):
    """The commands run in the repository root, so relative experiment paths start there."""
    return os.path.join(REPO_ROOT, path)


def is_finished(job, keys):
    """Whether test.py's record of `job` exists and was made with the job's settings."""
    cfg = job.config(test=True)
    expected = {k: getattr(cfg, k) for k in keys}
    return find_record(cfg.replace(exp_dir=_in_repo(cfg.exp_dir)), expected).ok


def check_own_directory(job, keys):
    """Refuse to resume another configuration's run: the experiment directory of `job` must
    hold no run whose saved config differs from the job's on `keys`."""
    cfg = job.config()
    saved = _in_repo(os.path.join(cfg.exp_path, "result", "config.yaml"))
    if not os.path.isfile(saved):
        return
    other = read_yaml(saved)
    differing = [k for k in keys if k in other and other[k] != getattr(cfg, k)]
    if differing:
        raise ValueError(f"{job.label}: {saved} belongs to a run with "
                         f"{', '.join(f'{k}={other[k]!r}' for k in differing)}; the experiment "
                         "directory naming does not separate the two, so it is not resumed")


def execute(items, keys):
    """Run every unfinished job (train with resume=auto, then test); stop at a failure."""
    env = dict(os.environ, PYTHON=sys.executable)
    for item in items:
        if isinstance(item, str):
            print(item, flush=True)
            continue
        if is_finished(item, keys):
            print(f"# finished, skipped: {item.label}", flush=True)
            continue
        check_own_directory(item, keys)
        for command in (item.train_command() + " resume=auto", item.test_command()):
            print(command, flush=True)
            code = subprocess.run(command, shell=True, cwd=REPO_ROOT, env=env).returncode
            if code:
                raise ValueError(f"{item.label}: `{command}` failed with exit code {code}")


def main(argv=None):
    parser = command_parser("tools.paper", __doc__)
    parser.add_argument("table", nargs="?", help="1 .. 13 (supplement), main1, main2")
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(NUM_FOLDS)),
                        choices=range(NUM_FOLDS), metavar="K", help="folds to include (0-3)")
    parser.add_argument("--run", action="store_true", help="run the commands, in order")
    parser.add_argument("--list", action="store_true", help="list the tables")
    parser.add_argument("--doc", action="store_true", help=f"rewrite the generated parts of {DOC_FILE}")
    args = parser.parse_args(argv)
    tables, strategies = load_tables()
    if args.list:
        for table in tables.values():
            print(f"{table.id:<6} {table.source}: {table.title}")
        return 0
    if args.doc:
        with open(DOC_FILE, encoding="utf-8") as f:
            atomic_write_text(DOC_FILE, update_doc(f.read(), tables, strategies))
        print(f"{DOC_FILE}: generated parts rewritten")
        return 0
    if args.table not in tables:
        raise ValueError(f"table {args.table!r} is not defined; choose one of {', '.join(tables)}")
    items = plan(tables[args.table], strategies, args.folds)
    if args.run:
        execute(items, run_keys(tables, strategies))
        return 0
    for item in items:
        print(item if isinstance(item, str) else f"{item.train_command()}\n{item.test_command()}")
    return 0


if __name__ == "__main__":
    run_main(main)
