"""Training, evaluation and replay on big logs with Apache Spark (`--spark-master`).

The cluster does what grows with the log; the driver does what the router needs:

1. **Read and validate** (`SparkOutcomes.read`): Parquet (a file or a partitioned
   folder), CSV or JSON lines, read by Spark; every row checked against the outcomes
   contract (data/README.md) with Spark SQL. A bad row is a named error like the local
   path's: the file, the field, what was expected, the offending value and the row's
   prompt id and model, and how many rows share the problem.
2. **Label** on the cluster: each prompt's cheapest successful model (the same function
   as training, router_ml.core.labeling) on partitions grouped by prompt.
3. **Sample** when the log has more prompts than the driver should hold
   (`max_driver_prompts`): a sample stratified by label, drawn with a seed; training
   says so. Otherwise every prompt.
4. **Collect** those prompts' rows to the driver, in the file's row order, and validate
   them with the local path's `validate_outcomes`, so prices, labels, splits and every
   later step are computed by the same code on the same rows as `router-ml train` would.
5. **Embed** on the cluster (`SparkCachedEmbedder`): the distinct texts no run has
   embedded yet are embedded by Python workers (each loads the embedder once), appended
   to a Parquet cache keyed by the embedder's id (its files' fingerprint and window) and
   the text's sha256, reused across runs and router versions; the driver reads back the
   vectors it needs.

The heads are then fitted on the driver from those vectors, and the artifact is the
same as the local path's: it serves without Spark. Memory on the driver, measured by
benchmarks/spark_scale.py: about 0.3 GB + 40 KB per prompt (9 models, 256 dimensions,
blend head); see README.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from router_ml.core.spark import read_table
from router_ml.errors import OutcomesError
from router_ml.training.data.outcomes import OPTIONAL, REQUIRED, validate_outcomes

_TRUE = ("true", "1", "yes", "y", "t", "1.0")
_FALSE = ("false", "0", "no", "n", "f", "0.0")
MAX_DRIVER_PROMPTS = 250_000  # about 10 GB on the driver (module docstring)


class SparkOutcomes:
    """An outcomes log read and checked on the cluster (module docstring, steps 1 to 4)."""

    def __init__(self, spark, path: str, *, success_threshold: float = 0.5, duplicates: str = "error",
                 column_map: dict[str, str] | None = None, max_driver_prompts: int = MAX_DRIVER_PROMPTS,
                 catalog=None, cost_model=None, seed: int = 0, log: Callable[[str], None] = print) -> None:
        self.spark, self.path, self.log = spark, str(path), log
        self.success_threshold, self.duplicates = success_threshold, duplicates
        self.max_driver_prompts, self.catalog, self.seed = max_driver_prompts, catalog, seed
        self.cost_model = cost_model  # prices for labels when there is no catalog (a router's)
        if not Path(self.path).exists():
            raise OutcomesError(f"{self.path}: outcomes not found")
        df = read_table(spark, self.path)
        if column_map:
            absent = [src for src in column_map if src not in df.columns]
            if absent:
                raise OutcomesError(f"{self.path}: --map names columns {absent} that are not in the data; found "
                                    f"{df.columns}")
            for src, dst in column_map.items():
                df = df.withColumnRenamed(src, dst)
        self.df = df
        self.sampled: str | None = None  # why and how the driver got a sample, when it did

    def check(self):
        """Spark-side validation of every row; returns the checked DataFrame (with the row order kept)."""
        from pyspark.sql import functions as F

        df, columns = self.df, self.df.columns
        missing = [c for c in REQUIRED if c not in columns]
        if missing or not ({"score", "success"} & set(columns)):
            need = missing + ([] if {"score", "success"} & set(columns) else ["score or success"])
            raise OutcomesError(f"{self.path}: missing required columns {need}; expected prompt, model and score "
                                f"(0..1) or success (true/false); found {columns}. Rename columns to the contract in "
                                "data/README.md (router-ml train --map SOURCE=TARGET)")
        keep = [c for c in (*REQUIRED, *OPTIONAL) if c in columns]
        df = df.select(*keep).withColumn("_file", F.input_file_name()).withColumn("_order",
                                                                                  F.monotonically_increasing_id())
        derived = F.substring(F.sha2(F.col("prompt").cast("string"), 256), 1, 16)  # = router_ml.training.data.outcomes.prompt_hash
        df = df.withColumn("_pid", F.coalesce(F.col("prompt_id").cast("string"), derived) if "prompt_id" in columns
                           else derived)
        ident = F.coalesce(F.col("prompt_id").cast("string"), F.lit("")) if "prompt_id" in columns else F.lit("")

        def bad(condition, field: str, expected: str) -> None:
            rows = df.where(condition)
            first = rows.select("_file", ident.alias("pid"), F.col("model").cast("string").alias("m"),
                                F.col(field).cast("string").alias("v")).limit(1).collect()
            if first:
                count = rows.count()
                row = first[0]
                where = f"prompt_id {row['pid']!r}, " if row["pid"] else ""
                raise OutcomesError(f"{row['_file'] or self.path}: field {field!r}: expected {expected}, found "
                                    f"{row['v']!r} ({where}model {row['m']!r}); {count:,} row(s) like it")

        text = lambda c: F.regexp_replace(F.col(c).cast("string"), r"[\s\p{Cc}\p{Cf}]", "")  # noqa: E731
        for field in ("prompt", "model"):
            bad(F.col(field).isNull() | (F.length(text(field)) == 0), field,
                "a string with some content (not only whitespace, control or zero-width characters)")
        if "prompt_id" in columns:
            bad(F.col("prompt_id").isNull() | (F.length(F.trim(F.col("prompt_id").cast("string"))) == 0), "prompt_id",
                "a non-empty id (or leave the column out to hash the prompt)")
        number = lambda c: F.col(c).try_cast("double")  # noqa: E731 - null where not a number (ANSI casts raise)
        if "score" in columns:
            if "success" not in columns:
                bad(number("score").isNull(), "score", "a number in [0, 1]")
            bad(number("score").isNotNull() & ((number("score") < 0) | (number("score") > 1) | F.isnan(number("score"))),
                "score", "a number in [0, 1]")
        if "success" in columns:
            flag = F.lower(F.trim(F.col("success").cast("string")))
            known = flag.isin(*_TRUE, *_FALSE)
            unread = ~known & F.col("success").isNotNull() & (flag != "")
            if "score" in columns:
                bad((~known) & number("score").isNull(), "success", "true/false (or a score in [0, 1]) on every row")
                bad(unread, "success", "true/false, yes/no or 1/0")
            else:
                bad(~known, "success", "true/false, yes/no or 1/0")
        if "cost" in columns:
            bad(number("cost").isNull() | F.isnan(number("cost")) | (number("cost") < 0), "cost",
                "a finite cost in USD >= 0 on every row (drop the column to price calls from the catalog)")
        for field in ("input_tokens", "output_tokens"):
            if field in columns:
                value = number(field)
                bad(F.col(field).isNotNull() & (F.trim(F.col(field).cast("string")) != "") &
                    (value.isNull() | (value < 0) | (value != F.round(value))), field,
                    "a whole number of tokens >= 0 (or empty)")
        if "weight" in columns:
            bad(F.col("weight").isNotNull() & (number("weight").isNull() | (number("weight") <= 0)), "weight",
                "a finite number > 0 (or empty for 1)")
        if "response" in columns:
            bad(F.col("response").isNotNull() & F.col("response").cast("string").isNull(), "response",
                "the model's answer as a string (or empty)")
        if self.duplicates == "error":
            key = "prompt_id" if "prompt_id" in columns else "prompt"
            dup = df.groupBy(key, "model").count().where(F.col("count") > 1).limit(1).collect()
            if dup:
                raise OutcomesError(f"{self.path}: {dup[0]['count']} rows for the same prompt ({key} "
                                    f"{str(dup[0][key])[:80]!r}) and model {dup[0]['model']!r}; keep one, or pass "
                                    "--duplicates mean to average them")
        return df

    def labels(self, df):
        """(prompt id, label) per prompt, computed on the cluster with the training's own labelling."""
        from pyspark.sql import functions as F

        catalog, cost_model, threshold = self.catalog, self.cost_model, self.success_threshold
        source = self.path

        def label_partition(batches):
            import warnings

            from router_ml.core.labeling import CENSORED, cheapest_successful_labels
            from router_ml.training.data.outcomes import to_routing_data

            parts = list(batches)
            frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            if frame.empty:
                return
            canonical = validate_outcomes(frame.drop(columns=["_file", "_order", "_pid"]), source,
                                          success_threshold=threshold, duplicates="mean")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = to_routing_data(canonical, catalog, source, cost_model=cost_model)
            labels = cheapest_successful_labels(data.success, data.costs)
            names = [data.models[j] if 0 <= j < len(data.models) else ("censored" if j == CENSORED else "none")
                     for j in labels]
            yield pd.DataFrame({"_pid": data.prompt_ids, "label": names})

        return df.repartition(F.col("_pid")).mapInPandas(label_partition, "_pid string, label string")

    def to_driver(self) -> pd.DataFrame:
        """The validated outcomes the driver trains on (all, or a stratified sample), in row order."""

        self.log(f"spark: reading and checking {self.path} on the cluster")
        df = self.check().cache()
        labels = self.labels(df).cache()
        counts = {row["label"]: row["count"] for row in labels.groupBy("label").count().collect()}
        prompts = sum(counts.values())
        self.log(f"spark: {prompts:,} prompts; cheapest-successful labels on the cluster: " +
                 ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
        if prompts > self.max_driver_prompts:
            from pyspark.sql import Window
            from pyspark.sql import functions as F

            # Each label keeps its share (at least one prompt): the first prompts of a seeded hash order
            # within the label, so the same log and seed give the same sample on any cluster layout.
            share = self.max_driver_prompts / prompts
            keep = {label: max(1, round(share * n)) for label, n in counts.items()}
            quota = F.create_map(*[x for label, k in keep.items() for x in (F.lit(label), F.lit(k))])
            order = Window.partitionBy("label").orderBy(F.xxhash64("_pid", F.lit(self.seed)), "_pid")
            chosen = labels.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") <= quota[F.col("label")])
            df = df.join(chosen.select("_pid"), on="_pid", how="left_semi")
            self.sampled = (f"a sample stratified by label: {share:.1%} of the {prompts:,} prompts (seed {self.seed}), "
                            f"max_driver_prompts {self.max_driver_prompts:,}")
            self.log(f"spark: the driver fits on {self.sampled}")
        self.log("spark: collecting the outcome rows to the driver")
        frame = df.toPandas().sort_values("_order", kind="stable")
        source = f"{self.path} (collected from Spark)"
        return validate_outcomes(frame.drop(columns=["_file", "_order", "_pid"]).reset_index(drop=True), source,
                                 success_threshold=self.success_threshold, duplicates=self.duplicates)


def spark_reader(spark, catalog=None, max_driver_prompts: int = MAX_DRIVER_PROMPTS, seed: int = 0,
                 log: Callable[[str], None] = print, cost_model=None) -> Callable:
    """A `read_outcomes` (same signature) that reads and checks on the cluster and collects to the driver."""

    def read(path, *, success_threshold: float = 0.5, duplicates: str = "error", column_map=None) -> pd.DataFrame:
        reader = SparkOutcomes(spark, str(path), success_threshold=success_threshold, duplicates=duplicates,
                               column_map=column_map, max_driver_prompts=max_driver_prompts, catalog=catalog,
                               cost_model=cost_model, seed=seed, log=log)
        return reader.to_driver()

    return read
