"""Batch routing on Apache Spark: the same router artifact, over a DataFrame of prompts.

    from router_ml.core.spark import spark_session, route_dataframe
    spark = spark_session("local[2]")                      # or a cluster's master URL, or SPARK_REMOTE
    decisions = route_dataframe(spark.read.parquet("prompts.parquet"), "models/v1")

`route_dataframe` adds `model`, `confidence`, `router_version` and `quality_target` (the
target used) to every row, keeping the other columns. Each Python worker loads the
router once (from a directory every worker can read, or a `models:/` URI its MLflow
tracking server serves) and routes Arrow batches with `route_batch`: the decisions are
those of `Router.route_batch` on the same prompts. A `quality_target` column, when
present, sets the target per row; else the `quality_target` argument, else the router's
default.

Nothing here is imported by `router_ml` itself: Spark loads only when asked (the
`router-ml[spark]` extra installs pyspark).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings

DECISION_COLUMNS = "model string, confidence double, router_version string, quality_target double"
_ROUTERS: dict[str, object] = {}
_ROUTERS_LOCK = threading.Lock()


def _quiet_pandas_warning() -> None:
    # PySpark 4.3 warns that pandas >= 3 is "not fully supported"; the paths router-ml uses
    # (Arrow batches in and out of mapInPandas, toPandas) are covered by its tests.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")


LOCAL_PARTITIONS_PER_CORE = 4


def local_cores(master: str | None) -> int | None:
    """The cores of a `local`, `local[N]` or `local[*]` master (None: not a local master)."""
    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", (master or "").strip())
    if not found:
        return None
    if found.group(1) in (None, "*"):
        return 1 if found.group(1) is None else (os.cpu_count() or 1)
    return max(1, int(found.group(1)))


def spark_session(master: str | None = None, app_name: str = "router-ml", config: dict | None = None):
    """A SparkSession: `master` ("local[2]", "spark://host:7077", "yarn", "k8s://...", or "sc://host:15002"
    for a Spark Connect server) or, without one, whatever the environment says (`spark-submit`'s
    --master, or SPARK_REMOTE for Spark Connect). Workers run this interpreter (PYSPARK_PYTHON),
    so they import the same router-ml; on a cluster, install router-ml on the executors."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        from router_ml.errors import ConfigError

        raise ConfigError("Spark needs pyspark: pip install 'router-ml[spark]' (and Java 17+; see README)") from exc
    _quiet_pandas_warning()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    remote = bool(master and master.startswith("sc://")) or (not master and bool(os.environ.get("SPARK_REMOTE")))
    if master and master.startswith("sc://"):
        builder = builder.remote(master)
    elif master:
        builder = builder.master(master)
    # One embedding thread per task core: Spark sets OMP_NUM_THREADS (torch) to spark.task.cpus;
    # onnxruntime ignores it and would start a thread per machine core in every worker.
    task_cpus = (config or {}).get("spark.task.cpus", "1")
    settings = {"spark.sql.execution.arrow.pyspark.enabled": "true", "spark.sql.session.timeZone": "UTC"}
    if not remote:  # a Spark Connect server's own settings are fixed when it starts
        settings |= {"spark.ui.showConsoleProgress": "true", "spark.executorEnv.ROUTER_ML_ORT_THREADS": str(task_cpus)}
    cores = local_cores(master)
    if cores:  # Spark's 200 shuffle partitions are sized for a cluster: on one machine, tasks' overhead dominated
        settings["spark.sql.shuffle.partitions"] = str(LOCAL_PARTITIONS_PER_CORE * cores)
    settings |= config or {}
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def parallelism(spark) -> int:
    """The session's default parallelism (its cores). Spark Connect sessions have no SparkContext:
    there, `spark.default.parallelism` when set, else 8."""
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # pyspark.errors.PySparkNotImplementedError and kin under Spark Connect
        return int(spark.conf.get("spark.default.parallelism", "8"))


def describe(spark) -> str:
    """One line for the logs: where the session runs and on how many cores."""
    try:
        where = spark.sparkContext.master
    except Exception:
        where = f"Spark Connect {os.environ.get('SPARK_REMOTE', '')}".strip()
    return f"spark: {where}, {parallelism(spark)} cores"


def _router(source: str):
    """The router of `source`, loaded once per Python worker process."""
    with _ROUTERS_LOCK:
        if source not in _ROUTERS:
            from router_ml.core.router import load_router

            _ROUTERS[source] = load_router(source, decision_cache_size=0)
        return _ROUTERS[source]


def _route_batches(source: str, prompt_col: str, quality_target: float | None):
    def route(batches):
        import pandas as pd

        _quiet_pandas_warning()
        router = _router(source)
        for frame in batches:
            prompts = frame[prompt_col].tolist()
            targets = pd.to_numeric(frame["quality_target"]) if "quality_target" in frame.columns else None
            models, confidence, used = [None] * len(frame), [None] * len(frame), [None] * len(frame)
            groups = {None: list(range(len(frame)))} if targets is None else \
                pd.Series(range(len(frame))).groupby(targets.fillna(-1.0).to_numpy()).groups
            for target, rows in groups.items():
                rows = list(rows)
                wanted = quality_target if target is None or target < 0 else float(target)
                for i, d in zip(rows, router.route_batch([prompts[i] for i in rows], wanted)):
                    models[i], confidence[i], used[i] = d.model, d.confidence, d.quality_target
            yield frame.assign(model=models, confidence=confidence, router_version=router.version, quality_target=used)

    return route


def read_table(spark, path):
    """A Spark DataFrame from Parquet (a file or a partitioned folder), CSV or JSON lines, chosen by the name."""
    path = spark_path(path)
    name = path.lower()
    if name.endswith((".csv", ".csv.gz")):
        return spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json")):
        return spark.read.json(path)
    return spark.read.parquet(path)


def spark_path(path) -> str:
    """`path` as Spark should see it: a URI (hdfs://, s3a://, file:/...) as given, a local path made
    absolute, since executors and a Spark Connect server do not share this process's directory."""
    text = str(path)
    return text if "://" in text or text.startswith("file:") else os.path.abspath(text)


def read_prompts_spark(spark, path, prompt_col: str = "prompt"):
    """Prompts to route as a Spark DataFrame (`read_table`), which must have a prompt column."""
    from router_ml.errors import ConfigError

    df = read_table(spark, path)
    if prompt_col not in df.columns:
        raise ConfigError(f"{path}: expected a {prompt_col!r} column, found {df.columns}")
    check_prompts(df, str(path), prompt_col)
    return df


def check_prompts(df, source: str, prompt_col: str = "prompt") -> None:
    """Named errors, in one pass over `df`, for what the local reader refuses: a prompt that is not a
    string or has no content, a quality_target that is not a number in [0, 1]."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    from router_ml.errors import ConfigError

    if not isinstance(df.schema[prompt_col].dataType, StringType):
        raise ConfigError(f"{source}: field {prompt_col!r}: expected strings, found "
                          f"{df.schema[prompt_col].dataType.simpleString()}")
    prompt = F.col(prompt_col)
    checks = {"prompt": (prompt.isNull() | (F.length(F.trim(prompt)) == 0), prompt,
                         "expected a string with some content")}
    if "quality_target" in df.columns:
        raw = F.col("quality_target")
        number = raw.try_cast("double")  # null where it is not a number (ANSI casts raise)
        checks["quality_target"] = (raw.isNotNull() & (number.isNull() | (number < 0) | (number > 1) | F.isnan(number)),
                                    raw.cast("string"), "expected a number in [0, 1] or empty")
    row = df.agg(*[F.sum(bad.cast("int")).alias(f"{name}_n") for name, (bad, _, _) in checks.items()],
                 *[F.first(F.when(bad, F.coalesce(shown.cast("string"), F.lit("null"))), ignorenulls=True)
                   .alias(f"{name}_v") for name, (bad, shown, _) in checks.items()]).collect()[0]
    for name, (_, _, expected) in checks.items():
        if row[f"{name}_n"]:
            raise ConfigError(f"{source}: field {name!r}: {expected}; found {row[f'{name}_v']!r} "
                              f"({row[f'{name}_n']:,} rows)")


def route_dataframe(df, router: str, prompt_col: str = "prompt", quality_target: float | None = None):
    """`df` with the router's decision for each row (module docstring); `router` is a directory or URI."""
    from router_ml.errors import ConfigError

    if prompt_col not in df.columns:
        raise ConfigError(f"route_dataframe: no column {prompt_col!r}; the DataFrame has {df.columns}")
    clashes = sorted({"model", "confidence", "router_version"} & set(df.columns))
    if clashes:
        raise ConfigError(f"route_dataframe: the DataFrame already has columns {clashes}; rename them first")
    schema = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in df.schema.fields
                       if f.name != "quality_target")
    schema = f"{schema}, {DECISION_COLUMNS}" if schema else DECISION_COLUMNS
    source = str(router)
    if not source.startswith(("models:/", "runs:/")):
        source = os.path.abspath(source)  # workers resolve it the same way
    return df.mapInPandas(_route_batches(source, prompt_col, quality_target), schema)


def route_to_parquet(master: str, input_path, output, router: str, quality_target: float | None = None,
                     log=print) -> None:
    """`router-ml route --spark-master`: the prompts of `input_path` with their decisions, as a new Parquet
    folder `output`. A local folder is written beside itself and renamed into place when complete, so a
    failed job leaves nothing half-written; an existing one is never touched. The session is stopped."""
    import shutil
    import tempfile

    from router_ml.errors import ConfigError

    out = spark_path(output)
    local = "://" not in out and not out.startswith("file:")
    if local and os.path.exists(out):
        raise ConfigError(f"--output {output}: already exists; choose a new folder (nothing is overwritten)")
    spark = spark_session(master)
    try:
        log(describe(spark))
        routed = route_dataframe(read_prompts_spark(spark, input_path), router, quality_target=quality_target)
        if not local:
            routed.write.mode("errorifexists").parquet(out)
        else:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=os.path.dirname(out))
            try:
                routed.write.mode("overwrite").parquet(tmp)  # the empty folder just made
                os.rename(tmp, out)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        spark.stop()
    log(f"wrote the decisions to {output} (Parquet)")
