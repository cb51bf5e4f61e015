"""Synthetic data of ``patronage bench``: target, sources and daily files, made by Spark.

Identifiers are generated (``%09d`` participants, ``1%09d`` veteran ICNs,
``2%09d`` caregiver ICNs), never taken from real data.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from patronage.stages import ingest_cg, ingest_scd

BASE_TS = dt.datetime(2025, 1, 2, 5, 0, 0)
DAY1 = dt.datetime(2025, 3, 3, 5, 0, 0)


@dataclass(frozen=True)
class Sizes:
    """Rows of the target and of the day's files."""

    active: int
    history: int
    file_rows: int
    cg_active: int
    cg_file_rows: int
    files: int = 10

    def scaled(self, scale: float) -> Sizes:
        def n(x: int) -> int:
            return max(int(x * scale), 10)

        return Sizes(
            n(self.active), n(self.history), n(self.file_rows),
            n(self.cg_active), n(self.cg_file_rows), self.files,
        )  # fmt: skip

    @property
    def universe(self) -> int:
        """Participants a file may name: the active ones and 10% new ones."""
        return int(self.active * 1.1) + 1


PROFILES = {
    # The VA's real population: ~6M rated veterans, tens of thousands of caregivers.
    "population": Sizes(6_000_000, 24_000_000, 50_000, 60_000, 2_000),
    "daily": Sizes(1_000_000, 4_000_000, 100_000, 10_000, 1_000),
}


def participant(i: Column) -> Column:
    return F.format_string("%09d", i)


def veteran_icn(i: Column) -> Column:
    return F.format_string("1%09d", i)


def caregiver_icn(i: Column) -> Column:
    return F.format_string("2%09d", i)


def _target(
    ids: DataFrame, ts: Column, *, batch: str, expired: bool, cols: dict[str, Column]
) -> DataFrame:
    null = F.lit(None).cast("string")
    base = {
        "edipi": null, "ICN": null, "Veteran_ICN": null, "participant_id": null,
        "Batch_CD": F.lit(batch), "Applicant_Type": null, "Caregiver_Status": null,
        "SC_Combined_Disability_Percentage": null, "PT_Indicator": null,
        "Individual_Unemployability": null, "Status_Begin_Date": F.lit("20240101"),
        "Status_Last_Update": null, "Status_Termination_Date": null,
        "SDP_Event_Created_Timestamp": ts, "filename": F.lit("/bench/seed.csv"),
        "RecordLastUpdated": F.to_date(ts), "RecordStatus": F.lit(not expired),
        "sentToDoD": F.lit(expired), "change_log": null,
        "RecordChangeStatus": F.lit("Expired Record" if expired else "New Record"),
    }  # fmt: skip
    base.update(cols)
    return ids.select(*[c.alias(name) for name, c in base.items()])


def scd_target_rows(spark: SparkSession, n: int, *, expired: bool, universe: int) -> DataFrame:
    """``n`` SCD rows; expired ones are weekly history of the first ``universe`` participants."""
    p = F.col("id") % F.lit(universe) if expired else F.col("id")
    base = int(BASE_TS.replace(tzinfo=dt.UTC).timestamp())
    ts = F.timestamp_seconds(F.lit(base))
    if expired:
        step = (F.col("id") / F.lit(universe)).cast("long") + 1
        ts = F.timestamp_seconds(F.lit(base) - step * F.lit(7 * 86400))
    return _target(
        spark.range(n), ts, batch="SCD", expired=expired,
        cols={
            "ICN": veteran_icn(p), "participant_id": participant(p),
            "SC_Combined_Disability_Percentage": F.lpad(
                ((F.col("id") * 7) % 101).cast("string"), 3, "0"),
            "PT_Indicator": F.lit("N"), "Status_Last_Update": F.lit("20240101"),
        },
    )  # fmt: skip


def cg_target_rows(spark: SparkSession, n: int) -> DataFrame:
    """``n`` active primary caregivers, each of its own veteran."""
    ts = F.lit(BASE_TS).cast("timestamp")
    return _target(
        spark.range(n), ts, batch="CG", expired=False,
        cols={
            "ICN": caregiver_icn(F.col("id")), "Veteran_ICN": veteran_icn(F.col("id")),
            "Applicant_Type": F.lit("Primary Caregiver"),
            "Caregiver_Status": F.lit("Approved"),
        },
    )  # fmt: skip


def scd_file_rows(spark: SparkSession, rows: int, universe: int, file_no: int) -> DataFrame:
    """A daily SCD file: mostly known participants (changed percent), ~10% new, some repeats."""
    ids = spark.range(rows)
    # A multiplicative stride spreads each file over the whole participant range;
    # every 50th row repeats the row before it (a duplicate within the file).
    i = F.col("id") - (F.col("id") % 50 == 49).cast("long")
    p = (i * F.lit(7919) + F.lit(file_no * 104_729)) % F.lit(universe)
    return ids.select(
        participant(p).alias("PTCPNT_ID"),
        ((i + F.lit(file_no * 13)) % 101).cast("string").alias("CMBNED_DEGREE_DSBLTY"),
        F.date_format(
            F.date_add(F.lit(dt.date(2025, 2, 1)), (i % 28).cast("int") + file_no), "MMddyyyy"
        ).alias("DSBL_DTR_DT"),
    ).select(*ingest_scd.COLUMNS)


def cg_file_rows(spark: SparkSession, rows: int, cg_active: int, file_no: int) -> DataFrame:
    """A daily CG file: status changes of known caregivers and ~10% new applications."""
    ids = spark.range(rows)
    c = (F.col("id") * F.lit(131) + F.lit(file_no * 7)) % F.lit(int(cg_active * 1.1) + 1)
    revoked = F.col("id") % 3 == 0
    day = F.date_add(F.lit(dt.date(2025, 2, 1)), (F.col("id") % 28).cast("int"))
    null = F.lit("")
    cols = {
        "Discharge_Revocation_Date__c": null,
        "Caregiver_Status__c": F.when(revoked, "Revoked/Discharged").otherwise("Approved"),
        "CreatedById": F.lit("005BENCHUSER0001"),
        "Dispositioned_Date__c": F.date_format(day, "yyyy-MM-dd"),
        "CARMA_Case_ID__c": F.format_string("500BENCH%09d", F.col("id")),
        "Applicant_Type__c": F.lit("Primary Caregiver"),
        "CreatedDate": F.date_format(F.to_timestamp(day), "yyyy-MM-dd'T'HH:mm:ss'Z'"),
        "Veteran_ICN__c": F.concat(veteran_icn(c), F.lit("V200001")),
        "Benefits_End_Date__c": F.when(revoked, F.date_format(day, "yyyy-MM-dd")).otherwise(null),
        "Caregiver_Id__c": F.format_string("a0BENCH%09d", c),
        "CARMA_Case_Number__c": F.format_string("CASE-%09d", F.col("id")),
        "Caregiver_ICN__c": F.concat(caregiver_icn(c), F.lit("V100001")),
    }
    return ids.select(*[cols[name].alias(name) for name in ingest_cg.COLUMNS])


def lookup_rows(spark: SparkSession, universe: int) -> DataFrame:
    return spark.range(universe).select(
        veteran_icn(F.col("id")).alias("MVIPersonICN"),
        participant(F.col("id")).alias("participant_id"),
        F.format_string("%010d", F.col("id")).alias("edipi"),
        F.lit(None).cast("string").alias("va_profile_id"),
        F.lit("P").alias("ICNStatus"),
        F.lit(BASE_TS).cast("timestamp").alias("Last_Modified_Date"),
    )


def pt_rows(spark: SparkSession, universe: int) -> DataFrame:
    """PT flags for about 1% of participants, half of them Y."""
    return spark.range(0, universe, 97).select(
        participant(F.col("id")).alias("PTCPNT_VET_ID"),
        F.when(F.col("id") % 2 == 0, "Y").otherwise("N").alias("PT_35_FLAG"),
    )


def write_csv(df: DataFrame, path: Path, mtime: dt.datetime) -> int:
    """One CSV file with header at ``path`` (Spark writes a directory; keep its part)."""
    tmp = path.with_name(path.name + ".parts")
    df.coalesce(1).write.mode("overwrite").option("header", True).csv(tmp.as_posix())
    part = next(tmp.glob("part-*.csv"))
    shutil.move(part, path)
    shutil.rmtree(tmp, ignore_errors=True)
    stamp = mtime.replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))
    return path.stat().st_size
