"""Synthetic MVI identity sources and PT tables (Spark) for the generator.

Deterministic per seed: every generated veteran and caregiver gets PSA rows
for the three institutions SPEC §2.4 uses (with a few inactive and missing
correlations), a person row, and PT flags in the seed and delta tables.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from patronage.devtools import fixture_landing as landing

SID_CORP, SID_DOD, SID_VETS = 5667, 6061, 6722


def _pct(seed: int, salt: int) -> Column:
    """A deterministic 0..99 bucket per id, independent of partitioning."""
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), F.col("id")), F.lit(100))


def _mod_time(seed: int, salt: int) -> Column:
    # A time in 2024, stable per id.
    secs = F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), F.col("id")), F.lit(366 * 86_400))
    return F.timestamp_seconds(F.lit(1_704_067_200) + secs)


def mvi_frames(
    spark: SparkSession, veterans: int, caregivers: int, seed: int
) -> dict[str, DataFrame]:
    """PSA, person and institution sources (SPEC §2.4) for every generated person."""
    vets = spark.range(1, veterans + 1)
    cgs = spark.range(1, caregivers + 1)

    def psa(df: DataFrame, icn_base: int, sid: int, ident_base: int, salt: int) -> DataFrame:
        return df.select(
            (F.lit(icn_base) + F.col("id")).cast("string").alias("MVIPersonICN"),
            F.lit(sid).cast("int").alias("MVITreatingFacilityInstitutionSID"),
            (F.lit(ident_base) + F.col("id")).cast("string").alias(
                "TreatingFacilityPersonIdentifier"),
            F.when(_pct(seed, salt + 1) < 5, F.lit(None).cast("string"))
            .otherwise(F.lit("Active")).alias("ActiveMergedIdentifier"),
            _mod_time(seed, salt).alias("CorrelationModifiedDateTime"),
        )

    inactive = psa(vets.where(_pct(seed, 90) < 1), 1_000_000_000, SID_CORP, 60_000_000, 91
                   ).withColumn("ActiveMergedIdentifier", F.lit("Inactive"))
    psa_df = (
        psa(vets, 1_000_000_000, SID_CORP, 9_000_000, 10)
        .unionByName(psa(vets.where(_pct(seed, 20) < 97), 1_000_000_000, SID_DOD,
                         7_000_000_000, 20))
        .unionByName(psa(vets, 1_000_000_000, SID_VETS, 8_000_000_000, 30))
        .unionByName(inactive)
        .unionByName(psa(cgs.where(_pct(seed, 40) < 92), 2_000_000_000, SID_DOD,
                         7_200_000_000, 40))
        .unionByName(psa(cgs, 2_000_000_000, SID_VETS, 8_500_000_000, 50))
    )
    person = (
        vets.select((F.lit(1_000_000_000) + F.col("id")).cast("string").alias("MVIPersonICN"),
                    _mod_time(seed, 60).alias("calc_IngestionTimestamp"))
        .unionByName(cgs.select(
            (F.lit(2_000_000_000) + F.col("id")).cast("string").alias("MVIPersonICN"),
            _mod_time(seed, 61).alias("calc_IngestionTimestamp")))
        .select("MVIPersonICN", F.lit("P").alias("ICNStatus"), "calc_IngestionTimestamp")
    )
    institution = spark.createDataFrame(
        [(SID_CORP, "200CORP"), (SID_DOD, "200DOD"), (SID_VETS, "200VETS"), (9999, "200FAKE")],
        landing.MVI_SCHEMAS["institution"],
    )
    return {"psa": psa_df, "person": person, "institution": institution}


def pt_frames(spark: SparkSession, veterans: int, seed: int) -> dict[str, DataFrame]:
    """PT seed (~10% Y, ~30% N) and delta (~3% new Y, some N, nulls and duplicates)."""
    vets = spark.range(1, veterans + 1)
    pid = (F.lit(9_000_000) + F.col("id")).cast("string").alias("PTCPNT_VET_ID")
    seed_df = vets.where(_pct(seed, 70) < 40).select(
        pid, F.when(_pct(seed, 70) < 10, "Y").otherwise("N").alias("PT_35_FLAG"))
    b = _pct(seed, 80)
    delta = vets.where(b < 8).select(
        pid,
        F.when(b < 3, "Y").when(b < 6, "N").otherwise(F.lit(None).cast("string"))
        .alias("PT_35_FLAG"),
    )
    dups = vets.where(_pct(seed, 81) < 1).select(pid, F.lit("Y").alias("PT_35_FLAG"))
    return {"pt_seed": seed_df, "pt_delta": delta.unionByName(dups)}
