"""SPEC §3: the identity correlation lookup, through the real ``identity`` stage.

One module-scoped build on a small MVI data set answers the rule tests (few
Spark actions); the run-date and bad-input tests run the stage on their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from pyspark.sql import types as T

from patronage import identity_rules as rules
from patronage import tables as t
from patronage.stages import identity
from patronage.task import run_stage

pytestmark = pytest.mark.spark

PSA_SCHEMA = T.StructType(
    [
        T.StructField("MVIPersonICN", T.StringType()),
        T.StructField("MVITreatingFacilityInstitutionSID", T.IntegerType()),
        T.StructField("TreatingFacilityPersonIdentifier", T.StringType()),
        T.StructField("ActiveMergedIdentifier", T.StringType()),
        T.StructField("CorrelationModifiedDateTime", T.TimestampType()),
    ]
)
PERSON_SCHEMA = T.StructType(
    [
        T.StructField("MVIPersonICN", T.StringType()),
        T.StructField("ICNStatus", T.StringType()),
        T.StructField("calc_IngestionTimestamp", T.TimestampType()),
    ]
)
INSTITUTION_SCHEMA = T.StructType(
    [
        T.StructField("MVIInstitutionSID", T.IntegerType()),
        T.StructField("InstitutionCode", T.StringType()),
    ]
)
INSTITUTIONS = [(5667, "200CORP"), (6061, "200DOD"), (6722, "200VETS"), (9999, "200XYZ")]
CORP, DOD, VETS, OTHER = 5667, 6061, 6722, 9999


def ts(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour)


def write_parquet(spark, path: Path, rows, schema) -> str:
    spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet(str(path))
    return str(path)


def argv(schema: str, run_date: str, psa: str, person: str, institution: str) -> list[str]:
    unused = "/nonexistent/unused-by-identity"
    return [
        f"--run_id=run-{uuid.uuid4().hex[:8]}",
        "--catalog=spark_catalog",
        f"--schema={schema}",
        f"--inbound_scd_dir={unused}",
        f"--inbound_cg_dir={unused}",
        f"--cg_seed_file={unused}",
        "--pt_seed_table=patronage_sources.pt_seed",
        "--pt_delta_table=patronage_sources.pt_delta",
        f"--mvi_psa_dir={psa}",
        f"--mvi_person_dir={person}",
        f"--mvi_institution_dir={institution}",
        f"--export_dir={unused}",
        f"--backup_dir={unused}",
        f"--run_date={run_date}",
    ]


# ICNs of the shared data set, one per scenario.
A = "1000000001V000001"  # full correlations: newest row, inactive, other SID, null AMI
B = "1000000002V000002"  # two edipis: (ICN, code) ambiguous; one clean participant_id
C = "1000000003V000003"  # shares participant_id with D; nothing else
D = "1000000004V000004"  # shares participant_id with C; a clean edipi
E = "1000000005V000005"  # only an edipi, no person row
F = "1000000006V000006"  # a 200VETS identifier equal to A's edipi value (other code)
G = "1000000007V000007"  # two va_profile_ids, one also held by H: both rules
H = "1000000008V000008"  # shares G's va_profile_id

PSA_ROWS = [
    (A, CORP, "P-A", "Active", ts(1)),
    (A, CORP, "P-A", "Active", ts(3)),
    (A, DOD, "E-A", "Active", ts(2)),
    (A, VETS, "V-A", None, ts(1)),
    (A, VETS, "V-A-MERGED", "Merged", ts(5)),
    (A, OTHER, "X-A", "Active", ts(9)),
    (None, CORP, "P-NO-ICN", "Active", ts(9)),
    (A, DOD, None, "Active", ts(9)),
    (B, CORP, "P-B", "Active", ts(1)),
    (B, DOD, "E-B1", "Active", ts(1)),
    (B, DOD, "E-B1", None, ts(2)),
    (B, DOD, "E-B2", "Active", ts(1)),
    (C, CORP, "P-CD", "Active", ts(1)),
    (D, CORP, "P-CD", "Active", ts(2)),
    (D, DOD, "E-D", "Active", ts(1)),
    (E, DOD, "E-E", "Active", ts(4)),
    (F, VETS, "E-A", "Active", ts(1)),
    (G, VETS, "V-G1", "Active", ts(1)),
    (G, VETS, "V-G2", "Active", ts(1)),
    (H, VETS, "V-G2", "Active", ts(1)),
]
PERSON_ROWS = [
    (A, "OLD-STATUS", ts(1)),
    (A, "PERMANENT", ts(2)),
    (B, "PERMANENT", ts(1)),
    (D, "PERMANENT", ts(1)),
    (F, "TEMPORARY", ts(1)),
    ("1000000099V000099", "PERMANENT", ts(1)),  # a person with no correlation
]


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """Run the stage once on the shared data set; collect what it wrote."""
    root = tmp_path_factory.mktemp("mvi")
    schema = "t_identity_" + uuid.uuid4().hex[:10]
    dirs = (
        write_parquet(spark, root / "psa", PSA_ROWS, PSA_SCHEMA),
        write_parquet(spark, root / "person", PERSON_ROWS, PERSON_SCHEMA),
        write_parquet(spark, root / "institution", INSTITUTIONS, INSTITUTION_SCHEMA),
    )
    values = run_stage("identity", identity.run, argv(schema, "2026-11-30", *dirs), spark=spark)
    tables = t.Tables(spark, "spark_catalog", schema)
    lookup = {r["MVIPersonICN"]: r.asDict() for r in tables.read(t.CORRELATION_LOOKUP).collect()}
    quarantine = [r.asDict() for r in tables.read(t.DUPLICATE_CORRELATIONS).collect()]
    return values, lookup, quarantine


def quarantined(quarantine, icn):
    return sorted(
        (q["InstitutionCode"], q["TreatingFacilityPersonIdentifier"], q["ambiguity"])
        for q in quarantine
        if q["MVIPersonICN"] == icn
    )


def test_lookup_has_one_row_per_icn_with_an_unambiguous_correlation(built):
    values, lookup, quarantine = built
    assert sorted(lookup) == [A, B, D, E, F]
    assert values["built"] is True
    assert values["lookup_rows"] == 5
    assert values["quarantined_rows"] == len(quarantine) == 7
    assert values["lookup_run_date"] == "2026-11-30"
    assert set(identity.PUBLISHES) <= set(values)


def test_institution_codes_map_to_participant_id_edipi_va_profile_id(built):
    _, lookup, _ = built
    row = lookup[A]
    assert (row["participant_id"], row["edipi"], row["va_profile_id"]) == ("P-A", "E-A", "V-A")


def test_inactive_merged_identifiers_are_ignored(built):
    # 'Merged' V-A-MERGED would otherwise make (A, 200VETS) ambiguous; null counts as active.
    _, lookup, quarantine = built
    assert lookup[A]["va_profile_id"] == "V-A"
    assert quarantined(quarantine, A) == []


def test_rows_without_icn_or_outside_the_three_institutions_are_ignored(built):
    _, lookup, quarantine = built
    assert None not in lookup
    assert all(q["TreatingFacilityPersonIdentifier"] not in ("X-A", "P-NO-ICN") for q in quarantine)
    # The 200XYZ and null-identifier rows (day 9) are not correlations.
    assert lookup[A]["Last_Modified_Date"] == ts(3)


def test_newest_psa_row_wins_per_icn_sid_identifier(built):
    # E-B1 has rows on day 1 and day 2: one correlation, with the newest time.
    _, _, quarantine = built
    times = {
        q["TreatingFacilityPersonIdentifier"]: q["CorrelationModifiedDateTime"]
        for q in quarantine
        if q["MVIPersonICN"] == B
    }
    assert times == {"E-B1": ts(2), "E-B2": ts(1)}


def test_ambiguous_icn_code_is_quarantined_and_excluded(built):
    _, lookup, quarantine = built
    assert quarantined(quarantine, B) == [
        ("200DOD", "E-B1", rules.AMBIGUOUS_ICN_CODE),
        ("200DOD", "E-B2", rules.AMBIGUOUS_ICN_CODE),
    ]
    assert lookup[B]["edipi"] is None
    assert lookup[B]["participant_id"] == "P-B"
    assert {q["run_date"] for q in quarantine} == {dt.date(2026, 11, 30)}


def test_identifier_shared_by_two_icns_is_quarantined(built):
    _, lookup, quarantine = built
    for icn in (C, D):
        assert quarantined(quarantine, icn) == [("200CORP", "P-CD", rules.AMBIGUOUS_IDENTIFIER)]
    assert C not in lookup  # its only correlation is quarantined
    assert lookup[D]["participant_id"] is None
    assert lookup[D]["edipi"] == "E-D"
    # The same value under another institution code is a different identifier.
    assert lookup[F]["va_profile_id"] == "E-A"
    assert lookup[A]["edipi"] == "E-A"


def test_correlation_breaking_both_rules_names_both(built):
    _, lookup, quarantine = built
    assert quarantined(quarantine, G) == [
        ("200VETS", "V-G1", rules.AMBIGUOUS_ICN_CODE),
        ("200VETS", "V-G2", f"{rules.AMBIGUOUS_ICN_CODE},{rules.AMBIGUOUS_IDENTIFIER}"),
    ]
    assert quarantined(quarantine, H) == [("200VETS", "V-G2", rules.AMBIGUOUS_IDENTIFIER)]
    assert G not in lookup and H not in lookup


def test_missing_identifier_is_null(built):
    _, lookup, _ = built
    row = lookup[E]
    assert (row["participant_id"], row["edipi"], row["va_profile_id"]) == (None, "E-E", None)


def test_last_modified_date_is_the_max_over_all_correlations(built):
    _, lookup, _ = built
    assert lookup[A]["Last_Modified_Date"] == ts(3)
    assert lookup[E]["Last_Modified_Date"] == ts(4)
    # Quarantined correlations count: B's newest is its quarantined E-B1 (day 2).
    assert lookup[B]["Last_Modified_Date"] == ts(2)


def test_person_newest_row_gives_icn_status(built):
    _, lookup, _ = built
    assert lookup[A]["ICNStatus"] == "PERMANENT"
    assert lookup[F]["ICNStatus"] == "TEMPORARY"


def test_icn_without_person_row_is_kept_with_null_status(built):
    _, lookup, _ = built
    assert lookup[E]["ICNStatus"] is None
    assert "1000000099V000099" not in lookup


def test_skips_when_already_built_for_the_run_date_and_rebuilds_when_older(spark, tables, tmp_path):
    inst = write_parquet(spark, tmp_path / "inst", INSTITUTIONS[:3], INSTITUTION_SCHEMA)
    person = write_parquet(spark, tmp_path / "person", [(A, "PERMANENT", ts(1))], PERSON_SCHEMA)
    psa_dir = tmp_path / "psa"
    psa = write_parquet(spark, psa_dir, [(A, CORP, "P-A", "Active", ts(1))], PSA_SCHEMA)

    first = run_stage(
        "identity", identity.run, argv(tables.schema, "2026-11-29", psa, person, inst), spark=spark
    )
    assert (first["built"], first["lookup_rows"]) == (True, 1)

    # New MVI data; the same run date must not rebuild, the next day must.
    write_parquet(
        spark,
        psa_dir,
        [(A, CORP, "P-A", "Active", ts(1)), (E, DOD, "E-E", "Active", ts(2))],
        PSA_SCHEMA,
    )
    again = run_stage(
        "identity", identity.run, argv(tables.schema, "2026-11-29", psa, person, inst), spark=spark
    )
    assert (again["built"], again["lookup_rows"], again["lookup_run_date"]) == (
        False,
        1,
        "2026-11-29",
    )
    assert tables.read(t.CORRELATION_LOOKUP).count() == 1

    later = run_stage(
        "identity", identity.run, argv(tables.schema, "2026-11-30", psa, person, inst), spark=spark
    )
    assert (later["built"], later["lookup_rows"], later["lookup_run_date"]) == (
        True,
        2,
        "2026-11-30",
    )
    assert tables.read(t.CORRELATION_LOOKUP).count() == 2
    builds = sorted(r["run_date"] for r in tables.read(t.CORRELATION_LOOKUP_BUILDS).collect())
    assert builds == [dt.date(2026, 11, 29), dt.date(2026, 11, 30)]


def test_missing_source_directory_error_names_setting_and_path(spark, tables, tmp_path):
    missing = str(tmp_path / "no-such-psa")
    other = str(tmp_path / "unused")
    with pytest.raises(identity.IdentitySourceError) as err:
        run_stage(
            "identity",
            identity.run,
            argv(tables.schema, "2026-11-30", missing, other, other),
            spark=spark,
        )
    assert "mvi_psa_dir" in str(err.value)
    assert missing in str(err.value)
    assert not tables.exists(t.CORRELATION_LOOKUP)


def test_source_missing_columns_error_names_source_and_columns(spark, tables, tmp_path):
    psa = write_parquet(spark, tmp_path / "psa", [(A, CORP, "P-A", "Active", ts(1))], PSA_SCHEMA)
    person = write_parquet(
        spark,
        tmp_path / "person",
        [(A, "x")],
        T.StructType(
            [T.StructField("mvipersonicn", T.StringType()), T.StructField("Status", T.StringType())]
        ),
    )
    with pytest.raises(rules.MissingColumnsError) as err:
        run_stage(
            "identity",
            identity.run,
            argv(tables.schema, "2026-11-30", psa, person, psa),
            spark=spark,
        )
    message = str(err.value)
    assert "'person'" in message
    assert "ICNStatus" in message and "calc_IngestionTimestamp" in message
    assert "MVIPersonICN" not in message.split("column(s):")[1]  # matched case-insensitively
