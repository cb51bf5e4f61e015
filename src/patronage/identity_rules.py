"""SPEC §3 as pure DataFrame functions: MVI sources in, lookup and quarantine out.

Nothing here reads or writes storage, so every rule is testable on small
in-memory DataFrames. The identity stage does the I/O around them.

Decisions the SPEC leaves open (documented here because tests rely on them):

- A PSA row whose ``TreatingFacilityPersonIdentifier`` (or ICN) is null or
  blank carries no correlation and is not used; it is a legitimate empty field
  of the source, not bad input.
- Rule 4 compares *distinct* identifiers / ICNs: the same correlation seen
  through two SIDs of one code, or with two modified times, is not ambiguous.
- A correlation can break both ambiguity rules; its one quarantine row then
  names both rules in ``ambiguity`` (comma-separated, fixed order).
- ``Last_Modified_Date`` is the max modified time over *all* the ICN's
  correlations, quarantined ones included (SPEC: "over all its correlations";
  quarantine is our judgement, the date is MVI's).
- The lookup has one row per ICN that keeps at least one unambiguous
  correlation; an ICN whose every correlation is quarantined is only in
  ``duplicate_correlations``.
- An ICN with no person row is kept, with ``ICNStatus`` null.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from patronage import tables as t
from patronage.errors import MissingColumnsError

ICN = "MVIPersonICN"
SID = "MVITreatingFacilityInstitutionSID"
IDENTIFIER = "TreatingFacilityPersonIdentifier"
ACTIVE_MERGED = "ActiveMergedIdentifier"
MODIFIED = "CorrelationModifiedDateTime"
ICN_STATUS = "ICNStatus"
INGESTED = "calc_IngestionTimestamp"
INSTITUTION_SID = "MVIInstitutionSID"
CODE = "InstitutionCode"

#: SPEC §2.4: required columns per MVI source, with the type each is read as.
SOURCE_COLUMNS: dict[str, dict[str, T.DataType]] = {
    "psa": {
        ICN: T.StringType(),
        SID: T.LongType(),
        IDENTIFIER: T.StringType(),
        ACTIVE_MERGED: T.StringType(),
        MODIFIED: T.TimestampType(),
    },
    "person": {
        ICN: T.StringType(),
        ICN_STATUS: T.StringType(),
        INGESTED: T.TimestampType(),
    },
    "institution": {
        INSTITUTION_SID: T.LongType(),
        CODE: T.StringType(),
    },
}

#: SPEC §2.4: institution code -> lookup column, and the SID each code has.
CODE_COLUMNS = {"200CORP": "participant_id", "200DOD": "edipi", "200VETS": "va_profile_id"}
INSTITUTION_SIDS = (5667, 6061, 6722)

#: Values of ``duplicate_correlations.ambiguity`` (SPEC §3 rule 4).
AMBIGUOUS_ICN_CODE = "icn_has_multiple_identifiers"
AMBIGUOUS_IDENTIFIER = "identifier_has_multiple_icns"


def conform(df: DataFrame, source: str) -> DataFrame:
    """Select the source's required columns (case-insensitively) with their SPEC types.

    Raises :class:`MissingColumnsError` naming the source and every missing column.
    """
    wanted = SOURCE_COLUMNS[source]
    present = {c.lower(): c for c in df.columns}
    missing = [name for name in wanted if name.lower() not in present]
    if missing:
        raise MissingColumnsError(
            f"MVI source '{source}' lacks required column(s): {', '.join(missing)}"
        )
    return df.select(
        *[F.col(f"`{present[name.lower()]}`").cast(typ).alias(name) for name, typ in wanted.items()]
    )


def _present(col: str) -> Column:
    return F.col(col).isNotNull() & (F.trim(F.col(col)) != "")


def select_psa(psa: DataFrame) -> DataFrame:
    """Rule 1: usable PSA rows, the newest modified time per (ICN, SID, identifier).

    Only the modified time differs between rows of one key, so the newest row
    is the max of it (deterministic, no tie to break).
    """
    return (
        psa.where(
            _present(ICN)
            & _present(IDENTIFIER)
            & F.col(SID).isin(*INSTITUTION_SIDS)
            & (F.col(ACTIVE_MERGED).isNull() | (F.col(ACTIVE_MERGED) == "Active"))
        )
        .groupBy(ICN, SID, IDENTIFIER)
        .agg(F.max(MODIFIED).alias(MODIFIED))
    )


def newest_person(person: DataFrame) -> DataFrame:
    """Rule 2: one person row per ICN, the newest by ``calc_IngestionTimestamp``."""
    w = Window.partitionBy(ICN).orderBy(
        F.col(INGESTED).desc_nulls_last(), F.col(ICN_STATUS).asc_nulls_last()
    )
    return (
        person.where(_present(ICN))
        .withColumn("_rn", F.row_number().over(w))
        .where(F.col("_rn") == 1)
        .select(ICN, ICN_STATUS)
    )


def correlations(psa_rows: DataFrame, institution: DataFrame) -> DataFrame:
    """Rule 3: PSA joined to its institution code; distinct (ICN, code, identifier, time).

    Only the three codes of SPEC §2.4 become lookup columns, so other codes are
    not correlations we use.
    """
    codes = (
        institution.where(F.col(CODE).isin(*CODE_COLUMNS))
        .select(F.col(INSTITUTION_SID).alias(SID), CODE)
        .distinct()
    )
    return psa_rows.join(codes, SID, "inner").select(ICN, CODE, IDENTIFIER, MODIFIED).distinct()


def flag_ambiguity(corr: DataFrame) -> DataFrame:
    """Rule 4: add ``ambiguity`` (null when the correlation is unambiguous)."""
    by_icn_code = Window.partitionBy(ICN, CODE)
    by_code_identifier = Window.partitionBy(CODE, IDENTIFIER)
    many_identifiers = F.min(IDENTIFIER).over(by_icn_code) != F.max(IDENTIFIER).over(by_icn_code)
    many_icns = F.min(ICN).over(by_code_identifier) != F.max(ICN).over(by_code_identifier)
    return corr.withColumn(
        "ambiguity",
        F.when(
            many_identifiers | many_icns,
            F.concat_ws(
                ",",
                F.when(many_identifiers, F.lit(AMBIGUOUS_ICN_CODE)),
                F.when(many_icns, F.lit(AMBIGUOUS_IDENTIFIER)),
            ),
        ),
    )


def quarantine(flagged: DataFrame, run_date: dt.date) -> DataFrame:
    """Rule 4: the ambiguous correlations, as ``duplicate_correlations`` rows."""
    return flagged.where(F.col("ambiguity").isNotNull()).select(
        ICN,
        CODE,
        IDENTIFIER,
        MODIFIED,
        "ambiguity",
        F.lit(run_date).cast(T.DateType()).alias("run_date"),
    )


def lookup(flagged: DataFrame, person: DataFrame) -> DataFrame:
    """Rule 5: ``correlation_lookup`` rows, one per ICN with an unambiguous correlation."""
    clean = F.col("ambiguity").isNull()
    per_icn = flagged.groupBy(ICN).agg(
        *[
            F.max(F.when(clean & (F.col(CODE) == code), F.col(IDENTIFIER))).alias(column)
            for code, column in CODE_COLUMNS.items()
        ],
        F.max(MODIFIED).alias("Last_Modified_Date"),
        F.max(clean.cast("int")).alias("_clean"),
    )
    return (
        per_icn.where(F.col("_clean") == 1)
        .join(person, ICN, "left")
        .select(*[F.col(f.name).cast(f.dataType) for f in t.LOOKUP_SCHEMA.fields])
    )


def build(
    psa: DataFrame, person: DataFrame, institution: DataFrame, run_date: dt.date
) -> tuple[DataFrame, DataFrame]:
    """SPEC §3 rules 1-5 on conformed sources: ``(lookup, quarantine)``."""
    flagged = flag_ambiguity(correlations(select_psa(psa), institution))
    return lookup(flagged, newest_person(person)), quarantine(flagged, run_date)
