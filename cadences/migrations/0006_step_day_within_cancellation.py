"""A cadence step's day never passes its segment's cancellation day, in the database itself.

A CHECK constraint cannot read another table, so triggers do it: on every step insert or update
(SQLite and PostgreSQL), and on PostgreSQL also when a segment's cancellation day is lowered —
a constraint trigger checked at commit, so an import or admin save that lowers the day and
removes the later steps in one transaction passes, while one that leaves a step behind fails.
"""

from django.db import migrations

SQLITE_UP = [
    """
    CREATE TRIGGER cadence_step_day_within_cancellation_insert
    BEFORE INSERT ON cadences_cadencestep
    WHEN NEW.day > (SELECT cancellation_day FROM cadences_segment WHERE id = NEW.segment_id)
    BEGIN SELECT RAISE(ABORT, 'cadence step day is after its segment''s cancellation day'); END
    """,
    """
    CREATE TRIGGER cadence_step_day_within_cancellation_update
    BEFORE UPDATE OF day, segment_id ON cadences_cadencestep
    WHEN NEW.day > (SELECT cancellation_day FROM cadences_segment WHERE id = NEW.segment_id)
    BEGIN SELECT RAISE(ABORT, 'cadence step day is after its segment''s cancellation day'); END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS cadence_step_day_within_cancellation_insert",
    "DROP TRIGGER IF EXISTS cadence_step_day_within_cancellation_update",
]

POSTGRES_UP = [
    """
    CREATE OR REPLACE FUNCTION cadence_step_day_within_cancellation() RETURNS trigger AS $$
    BEGIN
        IF NEW.day > (SELECT cancellation_day FROM cadences_segment WHERE id = NEW.segment_id) THEN
            RAISE EXCEPTION 'cadence step day % is after its segment''s cancellation day', NEW.day
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER cadence_step_day_within_cancellation
    BEFORE INSERT OR UPDATE OF day, segment_id ON cadences_cadencestep
    FOR EACH ROW EXECUTE FUNCTION cadence_step_day_within_cancellation()
    """,
    """
    CREATE OR REPLACE FUNCTION cadence_segment_keeps_steps_within_cancellation() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM cadences_cadencestep s JOIN cadences_segment g ON g.id = s.segment_id
                   WHERE g.id = NEW.id AND s.day > g.cancellation_day) THEN
            RAISE EXCEPTION 'segment % has cadence steps after its cancellation day', NEW.name
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE CONSTRAINT TRIGGER cadence_segment_keeps_steps_within_cancellation
    AFTER UPDATE OF cancellation_day ON cadences_segment
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION cadence_segment_keeps_steps_within_cancellation()
    """,
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS cadence_segment_keeps_steps_within_cancellation ON cadences_segment",
    "DROP FUNCTION IF EXISTS cadence_segment_keeps_steps_within_cancellation()",
    "DROP TRIGGER IF EXISTS cadence_step_day_within_cancellation ON cadences_cadencestep",
    "DROP FUNCTION IF EXISTS cadence_step_day_within_cancellation()",
]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, None)  # no parameters: the % in RAISE stays as written

    return run


class Migration(migrations.Migration):
    dependencies = [("cadences", "0005_initial_history")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}),
        )
    ]
