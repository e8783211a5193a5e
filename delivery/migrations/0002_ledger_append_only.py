"""The ledger is append-only, enforced by PostgreSQL: UPDATE and DELETE of an entry fail.

A trigger rather than grants, because it holds whatever role connects (the app, a shell,
a migration) and needs no second database role to set up.
"""

from django.db import migrations

SQL = """
CREATE FUNCTION delivery_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER delivery_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON delivery_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION delivery_ledger_append_only();
"""

REVERSE_SQL = """
DROP TRIGGER delivery_ledgerentry_append_only ON delivery_ledgerentry;
DROP FUNCTION delivery_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("delivery", "0001_initial")]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
