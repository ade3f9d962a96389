"""The k-fold expert-budget experiment and the init model.

``plan`` splits the expert pool into folds and draws each budget's sentences, ``run`` trains and
scores one run and runs the grid through ``nerloop.executors``, ``saturation`` and ``summary``
turn the runs into the budget curve, ``experiment`` reads ``configs/kfold.cfg`` and runs it all,
``init_model`` trains the init model at the chosen budgets.
"""

from nerloop.budget.experiment import (
    BudgetSettings,
    plan_experiment,
    read_settings,
    resolved_config,
    run_experiment,
)
from nerloop.budget.plan import (
    STUDY_BUDGET_PCT,
    RunSpec,
    fold_draw_order,
    format_number,
    parse_numbers,
    plan_grid,
    split_folds,
)
from nerloop.budget.run import (
    RESULT_VERSION,
    GridReport,
    RunSettings,
    execute_run,
    load_finished,
    run_fingerprint,
    run_grid,
)
from nerloop.budget.saturation import (
    DEFAULT_SATURATION_THRESHOLD,
    SATURATION_RULE,
    find_saturation,
)
from nerloop.budget.summary import (
    METRICS,
    build_summary,
    plot_curve,
    rows_to_csv,
    summarise_runs,
    summary_markdown,
    write_outputs,
)
from nerloop.executors import THREAD_ENV_VARS

__all__ = [
    "BudgetSettings",
    "DEFAULT_SATURATION_THRESHOLD",
    "GridReport",
    "METRICS",
    "RESULT_VERSION",
    "RunSettings",
    "RunSpec",
    "SATURATION_RULE",
    "STUDY_BUDGET_PCT",
    "THREAD_ENV_VARS",
    "build_summary",
    "execute_run",
    "find_saturation",
    "fold_draw_order",
    "format_number",
    "load_finished",
    "parse_numbers",
    "plan_experiment",
    "plan_grid",
    "plot_curve",
    "read_settings",
    "resolved_config",
    "rows_to_csv",
    "run_experiment",
    "run_fingerprint",
    "run_grid",
    "split_folds",
    "summarise_runs",
    "summary_markdown",
    "write_outputs",
]
